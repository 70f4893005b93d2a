/* Where lubeck's own Lua modules are (paths.c). */
#ifndef LUBECK_PATHS_H
#define LUBECK_PATHS_H

#include <stddef.h>

/* Writes the folder holding lubeck/init.lua to out: 0, or -1 when none is found. */
int paths_lua_dir(char *out, size_t outlen);

#endif
