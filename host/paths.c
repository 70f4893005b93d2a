/* Finding lubeck's own Lua modules with no LUA_PATH set: next to an installed
 * binary or library (<prefix>/bin or <prefix>/lib → <prefix>/share/lua/5.1), or
 * in the source tree the build came from. LUBECK_LUA_DIR overrides both. */
#define _GNU_SOURCE
#include "host.h"

#include <dlfcn.h>
#include <libgen.h>
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

/* <prefix>/<bin or lib>/file → <prefix>/share/lua/5.1 */
static int from_installed(const char *file, char *out, size_t outlen)
{
    char buf[PATH_MAX];
    if (!file || !realpath(file, buf)) return 0;
    char *prefix = dirname(dirname(buf));
    snprintf(out, outlen, "%s/%s", prefix, LUBECK_INSTALL_LUA_SUBDIR);
    return has_modules(out);
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
    return has_modules(out) ? 0 : -1;
}
