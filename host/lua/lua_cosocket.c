/* lubeck.tcp(): OpenResty-style cosockets, the Lua face. Every call that
 * would block parks the calling coroutine on the socket's ev_io (and its
 * timer) and returns through sched_complete when the operation is done, so a
 * handler reads like blocking code while the worker serves others. A socket
 * has two halves, a reader and a writer, so one coroutine can wait in receive
 * while another sends. This file: the object, its waits, send and the
 * options; connect is lua_cosocket_connect.c, receive lua_cosocket_recv.c,
 * sslhandshake lua_tls.c. The bytes themselves are services/cosocket*.c. A
 * socket is held by the request that connected it, and closes when it ends. */
#define _GNU_SOURCE
#include "lua_cosocket.h"

#include <errno.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DEFAULT_TIMEOUT 60.0     /* seconds: also what settimeout(0) means */
#define DEFAULT_IDLE 60.0

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void close_quietly(lbk_sock *s);

/* ---- the owner ----------------------------------------------------------------- */

static void release_held(lbk_held *held)
{
    lbk_sock *s = (lbk_sock *)((char *)held - offsetof(lbk_sock, held));
    close_quietly(s);
    host_req_unhold(held);   /* also when it never got a descriptor */
}

void sock_attach_to_req(lbk_sock *s, lbk_task *t)
{
    if (t->req) host_req_hold(t->req, &s->held);
}

lbk_task *sock_task(lbk_sock *s, lua_State *L, const char *what)
{
    return sched_running(&s->h->sched, L, what);
}

/* ---- finishing an operation ------------------------------------------------- */

void sock_half_clear(lbk_half *hf)
{
    lbk_sock *s = hf->sock;
    lua_State *L = hf->waiter ? hf->waiter->gen->L : NULL;
    ev_io_stop(s->h->loop, &hf->io);
    if (hf == &s->wr) {
        if (hf->op == OP_QUEUED) {
            sock_group_dequeue(&s->conn.queued);
            ev_timer_stop(s->h->loop, &s->kick);
        }
        conn_forget_addrs(&s->conn);
        if (L && s->send_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->send_ref);
        s->send_ref = LUA_NOREF;
    }
    if (L && hf->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, hf->self_ref);
    hf->self_ref = LUA_NOREF;
    hf->op = OP_NONE;
    hf->waiter = NULL;
}

/* Resumes the half's task with the values it already has on its stack. */
void sock_half_done(lbk_half *hf, int nvalues)
{
    lbk_task *t = hf->waiter;
    sock_half_clear(hf);
    sched_complete(t, nvalues);
}

/* Ends the half's wait with nil, err; close_it closes the socket too (which
 * wakes the other half's waiter, never this one's: it is detached first). */
void sock_half_fail(lbk_half *hf, const char *err, int close_it)
{
    lbk_task *t = hf->waiter;
    lua_pushnil(t->co);
    lua_pushstring(t->co, err);
    sock_half_clear(hf);
    if (close_it) sock_close(hf->sock);
    sched_complete(t, 2);
}

/* The other half's waiter, when the socket closes under it: woken on the next
 * loop turn with nil, "closed" (never run from inside this call). */
static void half_abort(lbk_half *hf)
{
    lbk_task *t = hf->waiter;
    if (!t) return;
    conn_cancel_resolve(&hf->sock->conn);
    sock_half_clear(hf);
    sched_wake_result(t, 0, "closed");
}

void sock_close(lbk_sock *s)
{
    half_abort(&s->rd);
    half_abort(&s->wr);
    conn_release_slot(&s->conn);
    if (s->conn.fd < 0) return;
    conn_close(&s->conn);
    host_req_unhold(&s->held);
}

/* Timeout or cancel: the task is resumed by sched; only undo our side. */
static void undo_op(lbk_task *t)
{
    lbk_sock *s = t->wait_on;
    if (!s) return;
    lbk_half *hf = s->rd.waiter == t ? &s->rd : &s->wr;
    int cancelled = t->req && t->req->cancelled;
    if (hf == &s->wr) conn_cancel_resolve(&s->conn);
    /* A half-done connect, send or handshake leaves the stream in an unknown
     * state; a receive that timed out keeps what it read for the next one. */
    int close_it = cancelled || hf->op != OP_RECV;
    hf->waiter = t;
    sock_half_clear(hf);
    if (close_it) sock_close(s);
}

int sock_begin_wait(lua_State *L, lbk_task *t, lbk_half *hf, enum op op, int events,
                    double timeout)
{
    lbk_sock *s = hf->sock;
    hf->op = op;
    hf->waiter = t;
    lua_pushvalue(L, 1);
    hf->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (events && s->conn.fd >= 0) {
        ev_io_set(&hf->io, s->conn.fd, events);
        ev_io_start(s->h->loop, &hf->io);
    }
    return sched_wait(L, t, s, timeout, undo_op, 0);
}

/* Waits again for what the transport asked (TLS may need to write to read). */
void sock_half_rearm(lbk_half *hf, int events)
{
    lbk_sock *s = hf->sock;
    if ((hf->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&hf->io)) return;
    ev_io_stop(s->h->loop, &hf->io);
    ev_io_set(&hf->io, s->conn.fd, events);
    ev_io_start(s->h->loop, &hf->io);
}

/* ---- errors and results ------------------------------------------------------- */

int sock_push_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* Misuse raises "bad argument #n to 'method' (...)", numbered as in a method
 * call (the socket is not counted), however the method was called: through
 * pcall or a local, a standard argerror would name '?' instead. */
int sock_arg_error(lua_State *L, const char *method, int idx, const char *msg)
{
    return luaL_error(L, "bad argument #%d to '%s' (%s)", idx - 1, method, msg);
}

int sock_arg_type_error(lua_State *L, const char *method, int idx, const char *expected)
{
    return sock_arg_error(L, method, idx, lua_pushfstring(L, "%s expected, got %s", expected,
                                                     luaL_typename(L, idx)));
}

lua_Number sock_arg_number(lua_State *L, const char *method, int idx)
{
    if (!lua_isnumber(L, idx)) sock_arg_type_error(L, method, idx, "number");
    return lua_tonumber(L, idx);
}

lua_Number sock_arg_opt_number(lua_State *L, const char *method, int idx, lua_Number def)
{
    return lua_isnoneornil(L, idx) ? def : sock_arg_number(L, method, idx);
}

const char *sock_arg_string(lua_State *L, const char *method, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        sock_arg_type_error(L, method, idx, "string");
    return lua_tolstring(L, idx, len);
}

void sock_arg_table(lua_State *L, const char *method, int idx)
{
    if (!lua_istable(L, idx)) sock_arg_type_error(L, method, idx, "table");
}

lbk_sock *sock_check(lua_State *L, const char *method)
{
    lbk_sock *s = lua_touserdata(L, 1);
    if (s && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, SOCK_MT);
        int same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same) return s;
    }
    luaL_error(L, "bad self to '%s' (lubeck.Socket expected, got %s); call it as sock:%s(...)",
               method, luaL_typename(L, 1), method);
    return NULL;
}

/* ---- send ---------------------------------------------------------------------- */

/* A string, a number or a (nested) array of them, as ngx_lua's send takes
 * them: measure (and check) first, then copy into one buffer. Depth-limited:
 * a table that holds itself is an error. */
static size_t piece_len(lua_State *L, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: {
        size_t len;
        lua_tolstring(L, idx, &len);   /* a number is converted in its (copied) slot */
        return len;
    }
    case LUA_TTABLE: {
        if (depth > 64) luaL_error(L, "bad argument #1 to 'send' (table nested too deep)");
        size_t total = 0;
        int n = (int)lua_objlen(L, idx);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            total += piece_len(L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        return total;
    }
    default:
        luaL_error(L, "bad argument #1 to 'send' (bad data type %s found in the table)",
                   lua_typename(L, lua_type(L, idx)));
        return 0;
    }
}

static char *piece_copy(lua_State *L, int idx, char *out)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        size_t len;
        const char *p = lua_tolstring(L, idx, &len);
        memcpy(out, p, len);
        return out + len;
    }
    int n = (int)lua_objlen(L, idx);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        out = piece_copy(L, lua_gettop(L), out);
        lua_pop(L, 1);
    }
    return out;
}

void cosocket_flatten(lua_State *L, int idx)
{
    size_t total = piece_len(L, idx, 0);
    char *flat = lua_newuserdata(L, total ? total : 1);
    piece_copy(L, idx, flat);
    lua_pushlstring(L, flat, total);
    lua_replace(L, idx);
    lua_pop(L, 1);
}

/* sock:send(string | number | nested array of them) → bytes | nil, err.
 * A table goes out as one write. */
static int l_send(lua_State *L)
{
    lbk_sock *s = sock_check(L, "send");
    int type = lua_type(L, 2);
    if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TTABLE)
        return sock_arg_type_error(L, "send", 2, "string, number or array table");
    lua_settop(L, 2);
    if (type == LUA_TTABLE) cosocket_flatten(L, 2);   /* one string, for one write */
    size_t len;
    const char *data = lua_tolstring(L, 2, &len);
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    if (s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy writing");
    lbk_task *t = sock_task(s, L, "sock:send");
    s->conn.send_data = data;
    s->conn.send_len = len;
    s->conn.send_off = 0;
    int events = 0;
    const char *err = NULL;
    int rc = conn_send(&s->conn, &events, &err);
    if (rc == 1) {
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
    }
    if (rc < 0) {
        sock_close(s);
        return sock_push_fail(L, err);
    }
    lua_pushvalue(L, 2);   /* the string must outlive the wait */
    s->send_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return sock_begin_wait(L, t, &s->wr, OP_SEND, events, s->send_timeout);
}

/* ---- readiness ---------------------------------------------------------------------- */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    lbk_half *hf = w->data;
    lbk_sock *s = hf->sock;
    if (!hf->waiter) {
        ev_io_stop(loop, w);
        return;
    }
    lua_State *co = hf->waiter->co;
    switch (hf->op) {
    case OP_CONNECT:
        sock_connect_ready(s);
        return;
    case OP_HANDSHAKE:
        sock_handshake_step(s);
        return;
    case OP_SEND: {
        int events = 0;
        const char *err = NULL;
        int rc = conn_send(&s->conn, &events, &err);
        if (rc == 0) return sock_half_rearm(hf, events);
        if (rc < 0) return sock_half_fail(hf, err, 1);
        lua_pushinteger(co, (lua_Integer)s->conn.send_len);
        return sock_half_done(hf, 1);
    }
    case OP_RECV: {
        int events = EV_READ, broken = 0;
        int n = sock_progress_recv(s, co, &events, &broken);
        if (!n) return sock_half_rearm(hf, events);
        lbk_task *t = hf->waiter;
        sock_half_clear(hf);
        if (broken) sock_close(s);
        return sched_complete(t, n);
    }
    default:
        ev_io_stop(loop, w);
    }
}

/* ---- the rest of the API -------------------------------------------------------------- */

/* A timeout in ms as ngx_lua reads it: 0 is the default, negative is misuse. */
static double check_timeout(lua_State *L, const char *method, int idx)
{
    lua_Number ms = sock_arg_number(L, method, idx);
    if (ms < 0 || ms > 2147483647.0) sock_arg_error(L, method, idx, "bad timeout value");
    return ms == 0 ? DEFAULT_TIMEOUT : ms / 1000.0;
}

/* sock:settimeout(ms): connect, send and read alike */
static int l_settimeout(lua_State *L)
{
    lbk_sock *s = sock_check(L, "settimeout");
    s->connect_timeout = s->send_timeout = s->read_timeout = check_timeout(L, "settimeout", 2);
    return 0;
}

/* sock:settimeouts(connect_ms, send_ms, read_ms) */
static int l_settimeouts(lua_State *L)
{
    lbk_sock *s = sock_check(L, "settimeouts");
    s->connect_timeout = check_timeout(L, "settimeouts", 2);
    s->send_timeout = check_timeout(L, "settimeouts", 3);
    s->read_timeout = check_timeout(L, "settimeouts", 4);
    return 0;
}

/* sock:setoption(name, value) → true | nil, err */
static int l_setoption(lua_State *L)
{
    lbk_sock *s = sock_check(L, "setoption");
    const char *name = sock_arg_string(L, "setoption", 2, NULL);
    int level = SOL_SOCKET, opt;
    if (!strcmp(name, "keepalive")) opt = SO_KEEPALIVE;
    else if (!strcmp(name, "reuseaddr")) opt = SO_REUSEADDR;
    else if (!strcmp(name, "tcp-nodelay")) { level = IPPROTO_TCP; opt = TCP_NODELAY; }
    else if (!strcmp(name, "sndbuf")) opt = SO_SNDBUF;
    else if (!strcmp(name, "rcvbuf")) opt = SO_RCVBUF;
    else return sock_arg_error(L, "setoption", 2, "unknown option (keepalive, reuseaddr, tcp-nodelay, sndbuf or rcvbuf)");
    int value = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : (int)sock_arg_number(L, "setoption", 3);
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    if (setsockopt(s->conn.fd, level, opt, &value, sizeof value) != 0) return sock_push_fail(L, strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

/* sock:setkeepalive([idle_ms [, pool_size]]) → 1 | nil, err (and closed) */
static int l_setkeepalive(lua_State *L)
{
    lbk_sock *s = sock_check(L, "setkeepalive");
    lua_Number idle_ms = sock_arg_opt_number(L, "setkeepalive", 2, 0);
    if (idle_ms < 0) return sock_arg_error(L, "setkeepalive", 2, "bad idle timeout: negative");
    double idle = idle_ms > 0 ? idle_ms / 1000.0 : DEFAULT_IDLE;
    lua_Integer size = (lua_Integer)sock_arg_opt_number(L, "setkeepalive", 3, s->pool_size ? s->pool_size : DEFAULT_POOL_SIZE);
    if (size < 1) return sock_arg_error(L, "setkeepalive", 3, "bad pool size: at least 1");
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy");
    int state = conn_keepalive(&s->conn, idle, (int)size);
    host_req_unhold(&s->held);   /* pooled or closed: nothing left to close */
    if (state != SOCK_CLEAN)
        return sock_push_fail(L, state == SOCK_DIRTY ? "connection in dubious state" : "closed");
    lua_pushinteger(L, 1);
    return 1;
}

static int l_getreusedtimes(lua_State *L)
{
    lbk_sock *s = sock_check(L, "getreusedtimes");
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    lua_pushinteger(L, s->conn.reused);
    return 1;
}

/* sock:close() → 1 | nil, "closed". A coroutine waiting on the socket gets
 * nil, "closed". */
static int l_close(lua_State *L)
{
    lbk_sock *s = sock_check(L, "close");
    if (s->conn.fd < 0) return sock_push_fail(L, "closed");
    sock_close(s);
    lua_pushinteger(L, 1);
    return 1;
}

/* Closes without waking anyone: for a request that ended (its tasks go with
 * it, and their own undo then finds nothing left to do) and for a socket
 * being collected (the Lua state may be closing). */
static void close_quietly(lbk_sock *s)
{
    conn_cancel_resolve(&s->conn);
    sock_half_clear(&s->rd);
    sock_half_clear(&s->wr);
    ev_timer_stop(s->h->loop, &s->kick);
    sock_close(s);   /* both halves idle: it wakes nobody */
}

static int l_gc(lua_State *L)
{
    lbk_sock *s = sock_check(L, "__gc");
    close_quietly(s);
    host_req_unhold(&s->held);
    conn_free(&s->conn);
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbk_sock *s = sock_check(L, "__tostring");
    lua_pushfstring(L, "lubeck.Socket (%s): %p", s->conn.fd >= 0 ? s->conn.key : "closed", (void *)s);
    return 1;
}

static void half_init(lbk_half *hf, lbk_sock *s)
{
    hf->sock = s;
    hf->self_ref = LUA_NOREF;
    ev_init(&hf->io, io_cb);
    hf->io.data = hf;
}

/* tcp() → a new, unconnected socket */
static int l_tcp(lua_State *L)
{
    lbk_gen *g = lua_touserdata(L, lua_upvalueindex(1));
    lbk_sock *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->h = g->host;
    conn_init(&s->conn, g->host->cosockets);
    s->connect_timeout = s->send_timeout = s->read_timeout = DEFAULT_TIMEOUT;
    s->send_ref = LUA_NOREF;
    half_init(&s->rd, s);
    half_init(&s->wr, s);
    s->backlog = -1;
    ev_init(&s->kick, sock_kick_cb);
    s->kick.data = s;
    s->held.release = release_held;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void cosocket_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = {
        { "connect", sock_l_connect }, { "send", l_send }, { "receive", sock_l_receive },
        { "receiveany", sock_l_receiveany }, { "receiveuntil", sock_l_receiveuntil },
        { "settimeout", l_settimeout }, { "settimeouts", l_settimeouts },
        { "setoption", l_setoption }, { "setkeepalive", l_setkeepalive },
        { "getreusedtimes", l_getreusedtimes }, { "sslhandshake", sock_l_sslhandshake },
        { "close", l_close }, { NULL, NULL }
    };
    host_lua_class(L, SOCK_MT, methods, l_gc, l_tostring);
    static const luaL_Reg functions[] = { { "tcp", l_tcp }, { NULL, NULL } };
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, functions, 1);
}
