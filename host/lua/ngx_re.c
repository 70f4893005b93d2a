/* The regex engine under lubeck.ngx's ngx.re: PCRE2 (already linked for the
 * router) with ngx_lua's option letters. C runs one match and returns offsets;
 * ngx.lua builds match/find/gmatch/sub/gsub on that. Compiled patterns are
 * cached per (options, pattern) in a table of the Lua state, bounded in size. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "ngx_lib.h"

#include <lauxlib.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#define RE_MT "lubeck.Regex"
#define RE_CACHE_MAX 1024

typedef struct lbk_regex {
    pcre2_code *code;
    pcre2_match_data *md;
    int ncaps;
} lbk_regex;

static char cache_key;   /* registry: options .. "/" .. pattern → lbk_regex userdata */
static char cache_count_key;

static int regex_gc(lua_State *L)
{
    lbk_regex *re = luaL_checkudata(L, 1, RE_MT);
    if (re->md) pcre2_match_data_free(re->md);
    if (re->code) pcre2_code_free(re->code);
    re->md = NULL;
    re->code = NULL;
    return 0;
}

static int regex_tostring(lua_State *L)
{
    lua_pushfstring(L, "lubeck.Regex: %p", lua_touserdata(L, 1));
    return 1;
}

/* ngx_lua's option letters → PCRE2 flags; 0, or -1 with *bad set. */
static int parse_options(const char *opts, uint32_t *flags, int *jit, char *bad)
{
    *flags = 0;
    *jit = 0;
    for (const char *p = opts; *p; p++) {
        switch (*p) {
        case 'i': *flags |= PCRE2_CASELESS; break;
        case 'm': *flags |= PCRE2_MULTILINE; break;
        case 's': *flags |= PCRE2_DOTALL; break;
        case 'x': *flags |= PCRE2_EXTENDED; break;
        case 'u': *flags |= PCRE2_UTF; break;
        case 'U': *flags |= PCRE2_UTF | PCRE2_NO_UTF_CHECK; break;
        case 'a': *flags |= PCRE2_ANCHORED; break;
        case 'D': *flags |= PCRE2_DUPNAMES; break;
        case 'j': *jit = 1; break;
        case 'o': break;   /* compiled once anyway: every pattern is cached */
        default: *bad = *p; return -1;
        }
    }
    return 0;
}

/* The compiled pattern for (regex, opts), from the cache or compiled now;
 * NULL with an error message pushed when it does not compile. */
static lbk_regex *compiled(lua_State *L, const char *regex, size_t rlen, const char *opts)
{
    lua_pushlightuserdata(L, &cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushlightuserdata(L, &cache_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    int cache = lua_gettop(L);
    lua_pushfstring(L, "%s/", opts);
    lua_pushlstring(L, regex, rlen);
    lua_concat(L, 2);
    int key = lua_gettop(L);
    lua_pushvalue(L, key);
    lua_rawget(L, cache);
    if (!lua_isnil(L, -1)) {
        lbk_regex *re = lua_touserdata(L, -1);
        lua_pop(L, 3);
        return re;
    }
    lua_pop(L, 1);

    uint32_t flags;
    int jit;
    char bad = 0;
    if (parse_options(opts, &flags, &jit, &bad) != 0) {
        lua_settop(L, cache - 1);
        lua_pushfstring(L, "unknown flag \"%c\" (flags \"%s\")", bad, opts);
        return NULL;
    }
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)regex, rlen, flags, &errcode, &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        lua_settop(L, cache - 1);
        lua_pushfstring(L, "pcre2_compile() failed: %s in \"%s\" at \"%s\"", (const char *)msg,
                        regex, regex + (erroff <= rlen ? erroff : rlen));
        return NULL;
    }
    if (jit) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter */
    lbk_regex *re = lua_newuserdata(L, sizeof *re);
    re->code = code;
    re->md = pcre2_match_data_create_from_pattern(code, NULL);
    uint32_t ncaps = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &ncaps);
    re->ncaps = (int)ncaps;
    luaL_getmetatable(L, RE_MT);
    lua_setmetatable(L, -2);

    /* A bounded cache: past the limit it starts over (patterns built from
     * data would otherwise grow it without end). */
    lua_pushlightuserdata(L, &cache_count_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_Integer count = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (count > RE_CACHE_MAX) {
        lua_newtable(L);
        lua_pushlightuserdata(L, &cache_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
        lua_replace(L, cache);
        count = 1;
    }
    lua_pushlightuserdata(L, &cache_count_key);
    lua_pushinteger(L, count);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, key);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
    lua_settop(L, cache - 1);
    return re;   /* referenced by the cache (or by the stack of the caller's next call) */
}

/* re.exec(subject, regex, opts, init) → offsets | nil | nil, err.
 * offsets: { from0, to0, from1, to1, ... } 1-based and inclusive (to = from - 1
 * for an empty match), false for a group that did not take part; init is the
 * 1-based position to start at. */
static int l_re_exec(lua_State *L)
{
    size_t slen, rlen;
    const char *subject = luaL_checklstring(L, 1, &slen);
    const char *regex = luaL_checklstring(L, 2, &rlen);
    const char *opts = luaL_optstring(L, 3, "");
    lua_Integer init = luaL_optinteger(L, 4, 1);
    lbk_regex *re = compiled(L, regex, rlen, opts);
    if (!re) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (init < 1) init = 1;
    if ((size_t)(init - 1) > slen) {
        lua_pushnil(L);
        return 1;
    }
    int rc = pcre2_match(re->code, (PCRE2_SPTR)subject, slen, (PCRE2_SIZE)(init - 1), 0, re->md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        lua_pushnil(L);
        lua_pushfstring(L, "pcre2_match() failed: %s", (const char *)msg);
        return 2;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    lua_createtable(L, 2 * (re->ncaps + 1), 0);
    for (int i = 0; i <= re->ncaps; i++) {
        if (i < rc && ov[2 * i] != PCRE2_UNSET) {
            lua_pushinteger(L, (lua_Integer)ov[2 * i] + 1);
            lua_rawseti(L, -2, 2 * i + 1);
            lua_pushinteger(L, (lua_Integer)ov[2 * i + 1]);
            lua_rawseti(L, -2, 2 * i + 2);
        } else {
            lua_pushboolean(L, 0);
            lua_rawseti(L, -2, 2 * i + 1);
            lua_pushboolean(L, 0);
            lua_rawseti(L, -2, 2 * i + 2);
        }
    }
    return 1;
}

/* re.names(regex, opts) → { name = group number, ... } | nil, err */
static int l_re_names(lua_State *L)
{
    size_t rlen;
    const char *regex = luaL_checklstring(L, 1, &rlen);
    const char *opts = luaL_optstring(L, 2, "");
    lbk_regex *re = compiled(L, regex, rlen, opts);
    if (!re) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    uint32_t count = 0, size = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMETABLE, &table);
    lua_createtable(L, 0, (int)count);
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR entry = table + i * size;
        int group = (entry[0] << 8) | entry[1];
        lua_pushstring(L, (const char *)entry + 2);
        lua_pushinteger(L, group);
        lua_rawset(L, -3);
    }
    return 1;
}

void ngx_re_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = { { NULL, NULL } };
    static const luaL_Reg functions[] = { { "exec", l_re_exec }, { "names", l_re_names }, { NULL, NULL } };
    host_lua_class(L, RE_MT, methods, regex_gc, regex_tostring);
    (void)g;   /* compiled regexes belong to the Lua state, not to a generation */
    luaL_setfuncs(L, functions, 0);
}
