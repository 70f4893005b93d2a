/* Finding lubeck's own Lua modules with no LUA_PATH set. In order:
 *   1. LUBECK_LUA_DIR, when set;
 *   2. beside the installed file this code runs from (liblubeck.so, the lubeck
 *      executable, or testhost.so), found with dladdr, then /proc/self/exe;
 *   3. the source tree the build came from, while it exists;
 *   4. the folder `cmake --install` was configured to put them in (this covers a
 *      program linked with the installed liblubeck.a).
 * The layouts of 2, each giving <prefix>/share/lua/5.1:
 *   <prefix>/bin/lubeck                            cmake --install, luarocks' tree/bin
 *   <prefix>/lib/liblubeck.so, <prefix>/lib64/...
 *   <prefix>/lib/x86_64-linux-gnu/liblubeck.so     Debian's multiarch libdir
 *   <prefix>/lib/lua/5.1/lubeck/testhost.so        Lua C modules (LuaRocks: LIBDIR)
 *   <prefix>/lib/luarocks/rocks-5.1/lubeck/...     files left in a rock's own folder */
#define _GNU_SOURCE
#include "paths.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int has_modules(const char *dir)
{
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/lubeck/init.lua", dir);
    return access(probe, R_OK) == 0;
}

/* Cuts path at its last '/': "a/b/c" → "a/b", returning "c". NULL at the top. */
static const char *cut_last(char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) return NULL;
    *slash = '\0';
    return slash + 1;
}

static int try_prefix(const char *prefix, char *out, size_t outlen)
{
    if (!*prefix) return 0;
    snprintf(out, outlen, "%s/%s", prefix, LUBECK_INSTALL_LUA_SUBDIR);
    return has_modules(out);
}

static int is_lib(const char *name)
{
    return name && strncmp(name, "lib", 3) == 0;
}

/* The Lua modules of the prefix the installed file lies in; 0 if none. */
static int from_installed(const char *file, char *out, size_t outlen)
{
    char path[PATH_MAX], prefix[PATH_MAX];
    if (!file || !realpath(file, path)) return 0;
    /* A Lua C module or a rock: the prefix is what comes before the marker. */
    static const char *const markers[] = { "/lib/lua/5.1/", "/lib/luarocks/rocks-5.1/" };
    for (size_t i = 0; i < sizeof markers / sizeof *markers; i++) {
        char *at = strstr(path, markers[i]);
        if (!at) continue;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(at - path), path);
        if (try_prefix(prefix, out, outlen)) return 1;
    }
    if (!cut_last(path)) return 0;                   /* path: the file's folder */
    const char *dir = cut_last(path);                /* path: its parent */
    if (dir && (!strcmp(dir, "bin") || is_lib(dir)) && try_prefix(path, out, outlen)) return 1;
    const char *parent = cut_last(path);             /* multiarch: lib/<triplet> */
    return is_lib(parent) && try_prefix(path, out, outlen);
}

int paths_lua_dir(char *out, size_t outlen)
{
    const char *env = getenv("LUBECK_LUA_DIR");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return has_modules(out) ? 0 : -1;
    }
    Dl_info info;
    if (dladdr((void *)paths_lua_dir, &info) && from_installed(info.dli_fname, out, outlen))
        return 0;
    if (from_installed("/proc/self/exe", out, outlen)) return 0;
    snprintf(out, outlen, "%s", LUBECK_SOURCE_LUA_DIR);
    if (has_modules(out)) return 0;
    snprintf(out, outlen, "%s", LUBECK_INSTALL_LUA_DIR);
    return has_modules(out) ? 0 : -1;
}
