/* sock:receive, receiveany and receiveuntil, the Lua face: the patterns'
 * arguments, the reader's wait, and the values each outcome of
 * services/cosocket_recv.c gives (data | nil, err, partial). */
#define _GNU_SOURCE
#include "lua_cosocket.h"

#include <lauxlib.h>
#include <string.h>

int sock_progress_recv(lbk_sock *s, lua_State *L, int *events, int *broken)
{
    slice got = { 0 };
    const char *err = NULL;
    switch (conn_recv(&s->conn, &got, events, &err)) {
    case CONN_RECV_WAIT:
        return 0;
    case CONN_RECV_DATA:
        lua_pushlstring(L, got.p, got.n);
        return 1;
    case CONN_RECV_END:
        lua_pushnil(L);
        return 1;
    case CONN_RECV_CLOSED:
        err = "closed";
        break;
    default:
        *broken = 1;
        break;
    }
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushlstring(L, got.p ? got.p : "", got.n);   /* the partial data */
    return 3;
}

/* Runs the receive set up in s->conn.recv: at once, or after a wait. */
static int start_recv(lua_State *L, lbk_sock *s, const char *what)
{
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    if (s->rd.op != OP_NONE) return sock_push_fail(L, "socket busy reading");
    lbk_task *t = sock_task(s, L, what);
    int events = EV_READ, broken = 0;
    int n = sock_progress_recv(s, L, &events, &broken);
    if (broken) sock_close(s);
    if (n) return n;
    return sock_begin_wait(L, t, &s->rd, OP_RECV, events, s->read_timeout);
}

/* sock:receive("*l" | "*a" | n) → data | nil, err, partial */
int sock_l_receive(lua_State *L)
{
    lbk_sock *s = sock_check(L, "receive");
    lbk_conn_recv *r = &s->conn.recv;
    if (lua_isnumber(L, 2)) {   /* a number, or a string of one (as ngx_lua takes) */
        lua_Number n = lua_tonumber(L, 2);
        if (n < 0) return sock_arg_error(L, "receive", 2, "bad pattern argument: negative byte count");
        r->kind = CONN_PATTERN_BYTES;
        r->want = (size_t)n;
    } else {
        const char *p = lua_isnoneornil(L, 2) ? "*l" : sock_arg_string(L, "receive", 2, NULL);
        if (!strcmp(p, "*l") || !strcmp(p, "l")) r->kind = CONN_PATTERN_LINE;
        else if (!strcmp(p, "*a") || !strcmp(p, "a")) r->kind = CONN_PATTERN_ALL;
        else return sock_arg_error(L, "receive", 2, "bad pattern argument: \"*l\", \"*a\" or a byte count expected");
    }
    return start_recv(L, s, "sock:receive");
}

/* sock:receiveany(max) → up to max bytes, as soon as there are any */
int sock_l_receiveany(lua_State *L)
{
    lbk_sock *s = sock_check(L, "receiveany");
    lua_Number max = sock_arg_number(L, "receiveany", 2);
    if (max < 1) return sock_arg_error(L, "receiveany", 2, "bad max argument: at least 1 expected");
    s->conn.recv.kind = CONN_PATTERN_ANY;
    s->conn.recv.want = (size_t)max;
    return start_recv(L, s, "sock:receiveany");
}

/* The iterator receiveuntil returns: reader([size]) */
static int l_until_step(lua_State *L)
{
    lbk_sock *s = lua_touserdata(L, lua_upvalueindex(1));
    lbk_until *u = lua_touserdata(L, lua_upvalueindex(3));
    lua_Number size = 0;
    if (!lua_isnoneornil(L, 1)) {
        if (!lua_isnumber(L, 1) || (size = lua_tonumber(L, 1)) < 0)
            return luaL_error(L, "bad argument #1 to receiveuntil's reader (size: a number >= 0)");
    }
    if (u->ended) {   /* the previous sized call reached the pattern */
        u->ended = 0;
        lua_pushnil(L);
        return 1;
    }
    lbk_conn_recv *r = &s->conn.recv;
    r->kind = CONN_PATTERN_UNTIL;
    r->want = (size_t)size;
    r->pat = lua_tolstring(L, lua_upvalueindex(2), &r->plen);
    r->from = 0;
    r->inclusive = u->inclusive;
    r->ended = &u->ended;
    /* start_recv wants the socket at index 1 (its wait keeps it alive). */
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));   /* the pattern too, while waiting */
    return start_recv(L, s, "receiveuntil's reader");
}

/* sock:receiveuntil(pattern [, {inclusive = true}]) → reader */
int sock_l_receiveuntil(lua_State *L)
{
    sock_check(L, "receiveuntil");
    size_t plen;
    sock_arg_string(L, "receiveuntil", 2, &plen);
    if (plen == 0) return sock_arg_error(L, "receiveuntil", 2, "pattern is empty");
    int inclusive = 0;
    if (!lua_isnoneornil(L, 3)) {
        sock_arg_table(L, "receiveuntil", 3);
        lua_getfield(L, 3, "inclusive");
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
            return sock_arg_error(L, "receiveuntil", 3, "bad \"inclusive\" option: a boolean expected");
        inclusive = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lbk_until *u = lua_newuserdata(L, sizeof *u);
    u->inclusive = inclusive;
    u->ended = 0;
    lua_pushcclosure(L, l_until_step, 3);
    return 1;
}
