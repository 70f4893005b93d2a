/* The receive side of a cosocket: one buffer per socket, filled a chunk at a
 * time from the transport, and the patterns that take from it: a line, all,
 * n bytes, whatever is there (receiveany), up to a pattern (receiveuntil, on
 * the matcher of cosocket_until.c). */
#define _GNU_SOURCE
#include "cosocket_sock.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 65536

static int buf_reserve(lbk_sock *s, size_t want)
{
    if (s->off > 0 && s->off == s->len) s->off = s->len = 0;
    if (s->cap - s->len >= want) return 0;
    if (s->off > 0) {   /* compact before growing */
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
        if (s->cap - s->len >= want) return 0;
    }
    size_t cap = s->cap ? s->cap : READ_CHUNK;
    while (cap - s->len < want) cap *= 2;
    char *grown = realloc(s->buf, cap);
    if (!grown) return -1;
    s->buf = grown;
    s->cap = cap;
    return 0;
}

/* Reads what the socket has: 1 if anything arrived (or the end), 0 to wait
 * (*events), -1 on error (*err). */
static int fill(lbk_sock *s, int *events, const char **err)
{
    if (buf_reserve(s, READ_CHUNK) != 0) { *err = "out of memory"; return -1; }
    ssize_t n = sock_transport_recv(s, s->buf + s->len, s->cap - s->len, events, err);
    if (n > 0) { s->len += (size_t)n; return 1; }
    if (n == 0) { s->eof = 1; return 1; }
    return n == -1 ? 0 : -1;
}

static void push_taken(lbk_sock *s, lua_State *L, size_t n, size_t skip)
{
    lua_pushlstring(L, s->buf + s->off, n);
    s->off += n + skip;
}

/* receiveuntil's step: the data before the pattern (and the pattern, when
 * inclusive); with a size, chunks of at most that many bytes, then nil. */
static int try_until(lbk_sock *s, lua_State *L)
{
    const char *data = s->buf + s->off;
    size_t have = s->len - s->off, safe;
    long at = cosocket_until_find(data, have, s->until_pat, s->until_len, s->until_from, &safe);
    size_t size = s->recv_want;
    if (at >= 0) {
        size_t before = (size_t)at;
        if (size && before > size) {   /* a full chunk, the pattern still ahead */
            push_taken(s, L, size, 0);
            return 1;
        }
        size_t with = s->until->inclusive ? s->until_len : 0;
        if (size && before + with == 0) {   /* nothing left before it: the end */
            s->off += s->until_len;
            lua_pushnil(L);
            return 1;
        }
        push_taken(s, L, before + with, s->until_len - with);
        if (size) s->until->ended = 1;
        return 1;
    }
    if (size && safe >= size) {
        push_taken(s, L, size, 0);
        return 1;
    }
    s->until_from = safe;
    return 0;
}

/* Pushes the result on L when the buffer satisfies the pending receive:
 * returns the count of values, or 0 when more bytes are needed. */
static int try_satisfy(lbk_sock *s, lua_State *L)
{
    const char *data = s->buf + s->off;
    size_t have = s->len - s->off;
    switch (s->recv_kind) {
    case RECV_LINE: {
        const char *nl = have ? memchr(data, '\n', have) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - data);
            lua_pushlstring(L, data, n > 0 && data[n - 1] == '\r' ? n - 1 : n);
            s->off += n + 1;
            return 1;
        }
        break;
    }
    case RECV_BYTES:
        if (have >= s->recv_want) {
            push_taken(s, L, s->recv_want, 0);
            return 1;
        }
        break;
    case RECV_ANY:
        if (have > 0) {
            push_taken(s, L, have < s->recv_want ? have : s->recv_want, 0);
            return 1;
        }
        break;
    case RECV_UNTIL:
        if (try_until(s, L)) return 1;
        break;
    case RECV_ALL:
        if (s->eof) {
            push_taken(s, L, have, 0);
            return 1;
        }
        return 0;
    }
    if (s->eof) {   /* nil, "closed", partial */
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        push_taken(s, L, have, 0);
        return 3;
    }
    return 0;
}

/* Reads until the receive is satisfied or the socket would block. Returns the
 * count of values pushed on L, or 0 to wait for *events; *broken is set when
 * the caller must close the socket (after ending its own wait). */
int sock_progress_recv(lbk_sock *s, lua_State *L, int *events, int *broken)
{
    for (;;) {
        int n = try_satisfy(s, L);
        if (n) return n;
        const char *err = NULL;
        int rc = fill(s, events, &err);
        if (rc == 0) return 0;
        if (rc < 0) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            push_taken(s, L, s->len - s->off, 0);
            *broken = 1;
            return 3;
        }
    }
}

/* Runs the receive set up in s->recv_*: at once, or after a wait. */
static int start_recv(lua_State *L, lbk_sock *s, const char *what)
{
    if (s->fd < 0) return sock_push_fail(L, "closed");
    if (s->rd.op != OP_NONE) return sock_push_fail(L, "socket busy reading");
    lbk_task *t = sched_current(s->h, L, what);
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
    if (lua_isnumber(L, 2)) {   /* a number, or a string of one (as ngx_lua takes) */
        lua_Number n = lua_tonumber(L, 2);
        if (n < 0) return sock_arg_error(L, "receive", 2, "bad pattern argument: negative byte count");
        s->recv_kind = RECV_BYTES;
        s->recv_want = (size_t)n;
    } else {
        const char *p = lua_isnoneornil(L, 2) ? "*l" : sock_arg_string(L, "receive", 2, NULL);
        if (!strcmp(p, "*l") || !strcmp(p, "l")) s->recv_kind = RECV_LINE;
        else if (!strcmp(p, "*a") || !strcmp(p, "a")) s->recv_kind = RECV_ALL;
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
    s->recv_kind = RECV_ANY;
    s->recv_want = (size_t)max;
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
    s->recv_kind = RECV_UNTIL;
    s->recv_want = (size_t)size;
    s->until_pat = lua_tolstring(L, lua_upvalueindex(2), &s->until_len);
    s->until_from = 0;
    s->until = u;
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

