/* lubeck.core.form: query strings, cookies and multipart bodies as Lua
 * tables (the parsing is proto/form.c and proto/multipart.c). request.lua
 * calls these when a handler first reads req.query, req.cookies or req.form;
 * ngx.lua's unescape_uri is url_decode. */
#include "lua_form.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "form.h"
#include "lua_room.h"
#include "multipart.h"

/* ---- query strings and cookies ------------------------------------------------ */

static int add_to_list(void *ud, slice name, slice value)
{
    lua_State *L = ud;
    lua_pushlstring(L, name.p, name.n);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 1, 0);
    }
    lua_pushlstring(L, value.p, value.n);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    lua_rawset(L, -3);
    return 0;
}

/* form.parse_urlencoded(s) → { name = {value, ...} } */
static int l_parse_urlencoded(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    room scratch;
    lua_newtable(L);
    form_parse_urlencoded(s, len, room_take(L, &scratch, len), add_to_list, L);
    room_free(&scratch);
    return 1;
}

static int add_first(void *ud, slice name, slice value)
{
    lua_State *L = ud;
    lua_pushlstring(L, name.p, name.n);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (!lua_isnil(L, -1)) {   /* the first cookie of a name wins (most specific path) */
        lua_pop(L, 2);
        return 0;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, value.p, value.n);
    lua_rawset(L, -3);
    return 0;
}

/* form.parse_cookies(s) → { name = value } */
static int l_parse_cookies(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_newtable(L);
    form_parse_cookies(s, len, add_first, L);
    return 1;
}

/* form.url_decode(s [, plus_as_space]) → the decoded bytes */
static int l_url_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    room out;
    size_t n = form_url_decode(s, len, room_take(L, &out, len), lua_toboolean(L, 2));
    lua_pushlstring(L, out.p, n);
    room_free(&out);
    return 1;
}

/* ---- multipart ---------------------------------------------------------------- */

static int add_part(void *ud, const multipart_part *p)
{
    lua_State *L = ud;   /* fields at -2, files at -1 */
    if (p->filename.p) {
        lua_pushlstring(L, p->name.p, p->name.n);
        lua_createtable(L, 0, 3);
        lua_pushlstring(L, p->filename.p, p->filename.n);
        lua_setfield(L, -2, "filename");
        if (p->content_type.p) lua_pushlstring(L, p->content_type.p, p->content_type.n);
        else lua_pushliteral(L, "application/octet-stream");
        lua_setfield(L, -2, "content_type");
        lua_pushlstring(L, p->body.p, p->body.n);
        lua_setfield(L, -2, "body");
        lua_rawset(L, -3);   /* the last file of a name wins */
        return 0;
    }
    lua_pushlstring(L, p->name.p, p->name.n);
    lua_pushvalue(L, -1);
    lua_rawget(L, -4);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, -6);
        lua_remove(L, -2);
    } else {
        lua_remove(L, -2);
    }
    lua_pushlstring(L, p->body.p, p->body.n);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    lua_pop(L, 1);
    return 0;
}

/* form.parse_multipart(body, content_type) → { name = {value, ...} }, { name = file } | nil, err */
static int l_parse_multipart(lua_State *L)
{
    size_t len, clen;
    const char *body = luaL_checklstring(L, 1, &len);
    const char *ctype = luaL_checklstring(L, 2, &clen);
    slice boundary;
    if (multipart_boundary(ctype, clen, &boundary) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "multipart/form-data without a usable boundary");
        return 2;
    }
    lua_settop(L, 2);
    lua_newtable(L);
    lua_newtable(L);
    const char *err = NULL;
    if (multipart_parse(body, len, boundary, add_part, L, &err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 2;
}

static const luaL_Reg form_functions[] = {
    { "parse_urlencoded", l_parse_urlencoded },
    { "parse_cookies", l_parse_cookies },
    { "url_decode", l_url_decode },
    { "parse_multipart", l_parse_multipart },
    { NULL, NULL }
};

void form_open(lua_State *L, lbk_gen *g)
{
    (void)g;   /* the functions read only their arguments */
    luaL_setfuncs(L, form_functions, 0);
}
