/* The Lua side of models, lubeck.core.model (filled by model_open):
 *   compile(fields) → a lubeck.Model userdata (the C schema)
 *   validate(m, value [, coerce]) → cleaned | nil, { path = message }
 *   json_check(text, max_depth) → true | nil, reason (duplicate keys, depth)
 * The declaration tables come from lua/lubeck/model.lua, which checks them
 * for the user; here a bad one raises. */
#include "host.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define MODEL_MT "lubeck.Model"

static char out_thread_key;      /* registry: the Lua thread cleaned values are built on */

/* The userdata owns the C schema and the registry refs it depends on: its
 * defaults and the nested models its object fields borrow. */
typedef struct lmodel {
    model *m;
    int *refs;
    int nrefs, cap;
} lmodel;

static int keep_ref(lua_State *L, lmodel *lm, int idx)
{
    if (lm->nrefs == lm->cap) {
        int cap = lm->cap ? lm->cap * 2 : 8;
        int *grown = realloc(lm->refs, (size_t)cap * sizeof *grown);
        if (!grown) return luaL_error(L, "out of memory");
        lm->refs = grown;
        lm->cap = cap;
    }
    lua_pushvalue(L, idx);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lm->refs[lm->nrefs++] = ref;
    return ref;
}

static int lmodel_gc(lua_State *L)
{
    lmodel *lm = luaL_checkudata(L, 1, MODEL_MT);
    if (lm->m) {
        model_free(lm->m);
        lm->m = NULL;
    }
    for (int i = 0; i < lm->nrefs; i++) luaL_unref(L, LUA_REGISTRYINDEX, lm->refs[i]);
    free(lm->refs);
    lm->refs = NULL;
    lm->nrefs = lm->cap = 0;
    return 0;
}

static int lmodel_tostring(lua_State *L)
{
    lmodel *lm = luaL_checkudata(L, 1, MODEL_MT);
    lua_pushfstring(L, "lubeck.Model (%d fields)", lm->m ? model_nfields(lm->m) : 0);
    return 1;
}

static const struct { const char *name; model_kind kind; } KINDS[] = {
    { "string", MODEL_STRING }, { "integer", MODEL_INTEGER }, { "number", MODEL_NUMBER },
    { "boolean", MODEL_BOOLEAN }, { "email", MODEL_EMAIL }, { "url", MODEL_URL },
    { "uuid", MODEL_UUID }, { "datetime", MODEL_DATETIME }, { "list", MODEL_LIST },
    { "object", MODEL_OBJECT },
};

static int opt_number(lua_State *L, int idx, const char *key, double *out)
{
    lua_getfield(L, idx, key);
    int has = lua_type(L, -1) == LUA_TNUMBER;
    if (has) *out = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return has;
}

static int opt_flag(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Builds a model_field from the declaration table at idx (absolute). */
static model_field *compile_field(lua_State *L, lmodel *lm, int idx, int depth)
{
    if (depth > MODEL_MAX_DEPTH) luaL_error(L, "model fields nest deeper than %d levels", MODEL_MAX_DEPTH);
    lua_getfield(L, idx, "kind");
    const char *kind = lua_tostring(L, -1);
    lua_pop(L, 1);
    int k = -1;
    for (size_t i = 0; kind && i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (!strcmp(kind, KINDS[i].name)) k = (int)i;
    if (k < 0) luaL_error(L, "model field: unknown kind '%s'", kind ? kind : "?");
    model_field *f = model_field_new(KINDS[k].kind);
    if (!f) luaL_error(L, "out of memory");
    double min = 0, max = 0;
    int has_min = opt_number(L, idx, "min", &min), has_max = opt_number(L, idx, "max", &max);
    model_field_bounds(f, has_min, min, has_max, max);
    model_field_flags(f, opt_flag(L, idx, "required"), opt_flag(L, idx, "private"));
    if (opt_flag(L, idx, "has_default")) {
        lua_getfield(L, idx, "default");
        model_field_default(f, keep_ref(L, lm, lua_gettop(L)));
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "pattern");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *re = lua_tolstring(L, -1, &len);
        char err[300];
        if (model_field_pattern(f, re, len, err, sizeof err) != 0) {
            model_field_free(f);
            luaL_error(L, "pattern '%s': %s", re, err);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "choices");
    if (lua_istable(L, -1)) {
        int n = (int)lua_objlen(L, -1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (!s || model_field_choice(f, s, len) != 0) {
                model_field_free(f);
                luaL_error(L, "choices must be strings");
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (KINDS[k].kind == MODEL_LIST) {
        lua_getfield(L, idx, "of");
        if (!lua_istable(L, -1)) {
            model_field_free(f);
            luaL_error(L, "list: the item kind is missing");
        }
        model_field_item(f, compile_field(L, lm, lua_gettop(L), depth + 1));
        lua_pop(L, 1);
    } else if (KINDS[k].kind == MODEL_OBJECT) {
        lua_getfield(L, idx, "model");
        lmodel *inner = luaL_testudata(L, -1, MODEL_MT);
        if (!inner || !inner->m) {
            model_field_free(f);
            luaL_error(L, "object: the model is missing");
        }
        keep_ref(L, lm, lua_gettop(L));   /* the nested schema lives as long as this one */
        model_field_object(f, inner->m);
        lua_pop(L, 1);
    }
    return f;
}

/* model.compile({ {name, decl}, ... }) → lubeck.Model */
static int l_model_compile(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lmodel *lm = lua_newuserdata(L, sizeof *lm);
    memset(lm, 0, sizeof *lm);
    luaL_getmetatable(L, MODEL_MT);
    lua_setmetatable(L, -2);
    lm->m = model_new();
    if (!lm->m) return luaL_error(L, "out of memory");
    int n = (int)lua_objlen(L, 1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        int entry = lua_gettop(L);
        lua_rawgeti(L, entry, 1);
        size_t len;
        const char *name = luaL_checklstring(L, -1, &len);
        lua_rawgeti(L, entry, 2);
        luaL_checktype(L, -1, LUA_TTABLE);
        model_field *f = compile_field(L, lm, lua_gettop(L), 1);
        char err[256];
        if (model_add(lm->m, name, len, f, err, sizeof err) != 0) return luaL_error(L, "%s", err);
        lua_pop(L, 3);
    }
    return 1;
}

/* ---- the value interface over Lua ------------------------------------------------ */

typedef struct lio {
    lua_State *L;     /* input: the value under inspection is on top */
    lua_State *O;     /* output */
    int errors_idx;   /* a slot in L: nil until the first error */
} lio;

static model_type lio_type(void *ud)
{
    lua_State *L = ((lio *)ud)->L;
    switch (lua_type(L, -1)) {
    case LUA_TNIL: return MODEL_T_ABSENT;
    case LUA_TBOOLEAN: return MODEL_T_BOOLEAN;
    case LUA_TNUMBER: return MODEL_T_NUMBER;
    case LUA_TSTRING: return MODEL_T_STRING;
    case LUA_TTABLE: return MODEL_T_TABLE;
    case LUA_TLIGHTUSERDATA: return lua_touserdata(L, -1) == NULL ? MODEL_T_NULL : MODEL_T_OTHER;  /* cjson.null */
    default: return MODEL_T_OTHER;
    }
}

static int lio_boolean(void *ud) { return lua_toboolean(((lio *)ud)->L, -1); }
static double lio_number(void *ud) { return lua_tonumber(((lio *)ud)->L, -1); }
static const char *lio_string(void *ud, size_t *len) { return lua_tolstring(((lio *)ud)->L, -1, len); }

static long lio_seq_len(void *ud)
{
    lua_State *L = ((lio *)ud)->L;
    size_t n = lua_objlen(L, -1);
    long count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Number k = lua_tonumber(L, -1);
        if (k < 1 || k > (lua_Number)n || k != (lua_Number)(long)k) {
            lua_pop(L, 1);
            return -1;
        }
        count++;
    }
    return count == (long)n ? count : -1;
}

static void lio_push_index(void *ud, long i) { lua_rawgeti(((lio *)ud)->L, -1, (int)i); }

static void lio_push_field(void *ud, const char *name, size_t len)
{
    lua_State *L = ((lio *)ud)->L;
    lua_pushlstring(L, name, len);
    lua_rawget(L, -2);
}

static void lio_pop(void *ud) { lua_pop(((lio *)ud)->L, 1); }
static void lio_new_object(void *ud, int n) { lua_createtable(((lio *)ud)->O, 0, n); }
static void lio_new_list(void *ud, long n) { lua_createtable(((lio *)ud)->O, (int)n, 0); }

static void lio_set_field(void *ud, const char *name, size_t len)
{
    lua_State *O = ((lio *)ud)->O;
    lua_pushlstring(O, name, len);
    lua_insert(O, -2);
    lua_rawset(O, -3);
}

static void lio_set_index(void *ud, long i) { lua_rawseti(((lio *)ud)->O, -2, (int)i); }

static void lio_put_copy(void *ud)
{
    lio *io = ud;
    lua_pushvalue(io->L, -1);
    lua_xmove(io->L, io->O, 1);
}

static void lio_put_number(void *ud, double v) { lua_pushnumber(((lio *)ud)->O, v); }
static void lio_put_boolean(void *ud, int v) { lua_pushboolean(((lio *)ud)->O, v); }

/* A copy of the value on top (tables copied, so a handler that changes the
 * cleaned value never changes the default). Replaces the top. */
static void copy_top(lua_State *L, int depth)
{
    if (!lua_istable(L, -1)) return;
    if (depth > MODEL_MAX_DEPTH) luaL_error(L, "a model default nests too deep");
    luaL_checkstack(L, 4, "copying a default");
    int src = lua_gettop(L);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, src)) {
        copy_top(L, depth + 1);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, src + 1);
    }
    lua_replace(L, src);
}

static void lio_put_default(void *ud, long ref)
{
    lio *io = ud;
    lua_rawgeti(io->L, LUA_REGISTRYINDEX, (int)ref);
    copy_top(io->L, 0);
    lua_xmove(io->L, io->O, 1);
}

static void lio_error(void *ud, const char *path, const char *msg)
{
    lio *io = ud;
    lua_State *L = io->L;
    if (lua_isnil(L, io->errors_idx)) {
        lua_newtable(L);
        lua_replace(L, io->errors_idx);
    }
    lua_pushstring(L, path);
    lua_rawget(L, io->errors_idx);
    int seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (seen) return;
    lua_pushstring(L, path);
    lua_pushstring(L, msg);
    lua_rawset(L, io->errors_idx);
}

/* model.validate(m, value [, coerce]) → cleaned | nil, errors */
static int l_model_validate(lua_State *L)
{
    lmodel *lm = luaL_checkudata(L, 1, MODEL_MT);
    if (!lm->m) return luaL_error(L, "this model was freed");
    int coerce = lua_toboolean(L, 3);
    lua_settop(L, 2);
    lua_pushlightuserdata(L, &out_thread_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_State *O = lua_tothread(L, -1);
    if (!O) return luaL_error(L, "lubeck.core was not opened with models");
    lua_settop(O, 0);
    lua_pushnil(L);                        /* 4: the errors table, once there is one */
    lua_pushvalue(L, 2);                   /* 5: the input on top */
    luaL_checkstack(L, 2 * MODEL_MAX_DEPTH + 20, "validating");
    luaL_checkstack(O, 2 * MODEL_MAX_DEPTH + 20, "validating");
    lio io = { L, O, 4 };
    model_io ops = {
        .ud = &io, .coerce = coerce,
        .type = lio_type, .boolean = lio_boolean, .number = lio_number, .string = lio_string,
        .seq_len = lio_seq_len, .push_index = lio_push_index, .push_field = lio_push_field,
        .pop = lio_pop, .new_object = lio_new_object, .new_list = lio_new_list,
        .set_field = lio_set_field, .set_index = lio_set_index, .put_copy = lio_put_copy,
        .put_number = lio_put_number, .put_boolean = lio_put_boolean,
        .put_default = lio_put_default, .error = lio_error,
    };
    int errors = model_validate(lm->m, &ops);
    if (errors == 0) {
        lua_xmove(O, L, 1);
        lua_settop(O, 0);
        return 1;
    }
    lua_settop(O, 0);
    lua_pushnil(L);
    lua_pushvalue(L, 4);
    return 2;
}

/* model.json_check(text [, max_depth=200]) → true | nil, reason */
static int l_json_check(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int depth = (int)luaL_optinteger(L, 2, 200);
    char err[160];
    if (model_json_check(s, len, depth, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg model_functions[] = {
    { "compile", l_model_compile },
    { "validate", l_model_validate },
    { "json_check", l_json_check },
    { NULL, NULL }
};

void model_open(lua_State *L, lbk_gen *g)
{
    if (luaL_newmetatable(L, MODEL_MT)) {
        lua_pushcfunction(L, lmodel_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lmodel_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &out_thread_key);
    lua_newthread(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, model_functions, 1);
}
