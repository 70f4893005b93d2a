/* TLS for cosockets, the Lua face: sock:sslhandshake, the session values it
 * returns (lubeck.TLSSession, for reused_session) and tls_add_ca. OpenSSL is
 * driven by services/tls.c. */
#include "lua_cosocket.h"

#include <lauxlib.h>
#include <stdio.h>

#define SESSION_MT "lubeck.TLSSession"

/* The handshake's value: a session for reuse, or true when none was asked. */
static void push_session(lbk_sock *s, lua_State *L)
{
    lbk_tls_session *sess = s->want_session ? tls_session(s->conn.tls) : NULL;
    if (!sess) {
        lua_pushboolean(L, 1);
        return;
    }
    lbk_tls_session **box = lua_newuserdata(L, sizeof *box);
    *box = sess;
    luaL_getmetatable(L, SESSION_MT);
    lua_setmetatable(L, -2);
}

void sock_handshake_step(lbk_sock *s)
{
    int events = 0;
    const char *err = NULL;
    int rc = tls_handshake(s->conn.tls, &events, &err);
    if (rc == 0) return sock_half_rearm(&s->wr, events);
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);   /* err lives in the TLS state that closing frees */
        return sock_half_fail(&s->wr, msg, 1);
    }
    push_session(s, s->wr.waiter->co);
    sock_half_done(&s->wr, 1);
}

/* sock:sslhandshake([reused_session [, server_name [, verify]]]) → session | nil, err.
 * verify defaults to true (OpenResty's is false: a default that checks nothing
 * is a trap); the name is checked against the certificate and sent as SNI. */
int sock_l_sslhandshake(lua_State *L)
{
    lbk_sock *s = sock_check(L, "sslhandshake");
    lbk_tls_session *session = NULL;
    if (!lua_isnoneornil(L, 2) && !lua_isboolean(L, 2))
        session = *(lbk_tls_session **)luaL_checkudata(L, 2, SESSION_MT);
    size_t nlen = 0;
    const char *name = lua_isnoneornil(L, 3) ? NULL : sock_arg_string(L, "sslhandshake", 3, &nlen);
    if (nlen >= 256) return sock_arg_error(L, "sslhandshake", 3, "server name too long");
    int verify = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy");
    lbk_task *t = sock_task(s, L, "sock:sslhandshake");
    s->want_session = !(lua_isboolean(L, 2) && !lua_toboolean(L, 2));
    if (s->conn.tls) {   /* a pooled TLS connection: its handshake is done */
        push_session(s, L);
        return 1;
    }
    const char *err = NULL;
    if (conn_tls_start(&s->conn, name, verify, session, &err) != 0) return sock_push_fail(L, err);
    int events = 0;
    int rc = tls_handshake(s->conn.tls, &events, &err);
    if (rc > 0) {
        push_session(s, L);
        return 1;
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        sock_close(s);
        return 2;
    }
    return sock_begin_wait(L, t, &s->wr, OP_HANDSHAKE, events, s->connect_timeout);
}

static int session_gc(lua_State *L)
{
    lbk_tls_session **box = luaL_checkudata(L, 1, SESSION_MT);
    tls_session_release(*box);
    *box = NULL;
    return 0;
}

static int session_tostring(lua_State *L)
{
    lua_pushfstring(L, "lubeck.TLSSession: %p", lua_touserdata(L, 1));
    return 1;
}

/* tls.add_ca(file) → true | nil, err: trusts the certificates in a PEM file
 * besides the system's (lubeck.app{ tls = { ca = ... } }). */
static int l_tls_add_ca(lua_State *L)
{
    lbk_gen *g = lua_touserdata(L, lua_upvalueindex(1));
    const char *file = luaL_checkstring(L, 1);
    char err[512];
    if (tls_client_add_ca(cosockets_tls(g->host->cosockets), file, err, sizeof err) != 0)
        return sock_push_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

void tls_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = { { NULL, NULL } };
    host_lua_class(L, SESSION_MT, methods, session_gc, session_tostring);
    static const luaL_Reg functions[] = { { "add_ca", l_tls_add_ca }, { NULL, NULL } };
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, functions, 1);
}
