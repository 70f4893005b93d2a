/* The Lua side of WebSockets (lua/lubeck/websocket.lua sits on it): the
 * handshake answer, receiving the next message, sending, closing. */
#include "websocket_conn.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scheduler.h"

/* The subprotocol goes into a header: an HTTP token only. */
static int is_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch)) return 0;
    }
    return 1;
}

/* The accept key Mongrel2 computed: base64. */
static int is_base64(slice s)
{
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || ch == '='))
            return 0;
    }
    return s.n > 0;
}

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static ws_conn *check_conn(lua_State *L, int idx)
{
    lbk_req *r = host_req_from_handle(gen_of(L)->host, luaL_checknumber(L, idx));
    return r ? r->ws : NULL;
}

static int push_closed(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

static void access_line(lubeck *h, lbk_req *r)
{
    if (h->quiet) return;
    char line[512];
    int n = snprintf(line, sizeof line, "%.*s %.*s %.*s 101 0 %.2fms\n",
                     (int)(r->m2.remote_addr.n > 64 ? 64 : r->m2.remote_addr.n),
                     r->m2.remote_addr.p ? r->m2.remote_addr.p : "-",
                     (int)r->m2.method.n, r->m2.method.p,
                     (int)(r->m2.path.n > 300 ? 300 : r->m2.path.n), r->m2.path.p,
                     (ev_time() - r->started) * 1000.0);
    if (n > 0) log_access(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ws.accept(handle [, protocol]) → true | nil, err: answers the handshake 101
 * and makes the request the connection's session. */
static int l_ws_accept(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lubeck *h = g->host;
    lbk_req *r = host_req_from_handle(h, luaL_checknumber(L, 1));
    size_t plen = 0;
    const char *proto = luaL_optlstring(L, 2, NULL, &plen);
    if (proto && !is_token(proto, plen))
        return luaL_argerror(L, 2, "a subprotocol is a token without CR, LF or NUL");
    if (!r || r->done || r->head_sent || r->ws || r->cancelled) {
        lua_pushnil(L);
        lua_pushliteral(L, "the request can no longer be answered");
        return 2;
    }
    slice key = r->m2.body;
    if (!slice_eq(r->m2.method, "WEBSOCKET_HANDSHAKE") || key.n > 64 || !is_base64(key)) {
        lua_pushnil(L);
        lua_pushliteral(L, "not a WebSocket handshake");
        return 2;
    }
    ws_conn *c = calloc(1, sizeof *c);
    if (!c) return luaL_error(L, "out of memory");
    c->h = h;
    c->req = r;
    c->sender = r->m2.sender;
    c->id = r->m2.conn_id;
    ev_timer_init(&c->pace, ws_pace_cb, 0, 0);
    c->pace.data = c;
    ev_timer_init(&c->close_wait, ws_close_wait_cb, 0, 0);
    c->close_wait.data = c;
    ws_conn *stale = ws_find(h, c->sender, c->id);
    if (stale) ws_unregister(h, stale);   /* a reused conn id: the new one wins */
    if (ws_register(h, c) != 0) {
        free(c);
        return luaL_error(L, "out of memory");
    }
    r->ws = c;
    r->head_sent = 1;
    r->done = 1;               /* no HTTP response may follow */
    r->status = 101;
    host_clear_deadline(h, r); /* a session outlives request_timeout */
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n",
                     (int)key.n, key.p);
    if (proto && plen < sizeof head - (size_t)n - 40)
        n += snprintf(head + n, sizeof head - (size_t)n, "Sec-WebSocket-Protocol: %.*s\r\n",
                      (int)plen, proto);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    ws_emit(c, head, (size_t)n);
    access_line(h, r);
    lua_pushboolean(L, 1);
    return 1;
}

static void undo_receive(lbk_task *t)
{
    ws_conn *c = t->wait_on;
    if (c && c->reader == t) c->reader = NULL;
}

/* ws.receive(handle) → "text"|"binary", data | "close", code, reason | nil, "closed" */
static int l_ws_receive(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    ws_conn *c = check_conn(L, 1);
    lbk_task *t = sched_running(g->sched, L, "websocket receive");
    if (!c) return push_closed(L);
    if (c->in_head) {
        ws_msg *m = c->in_head;
        c->in_head = m->next;
        if (!c->in_head) c->in_tail = NULL;
        c->in_count--;
        c->in_bytes -= m->len;
        int n = ws_push_values(L, m->op, m->code, m->data, m->len);
        free(m);
        return n;
    }
    if (c->closed) return push_closed(L);
    if (c->reader) return luaL_error(L, "websocket receive: another coroutine is receiving");
    c->reader = t;
    return sched_wait(L, t, c, -1, undo_receive, 0);
}

/* ws.send(handle, data, opcode) → true | nil, "closed"; waits for the pacing
 * window when the connection's budget is spent. */
static int l_ws_send(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    ws_conn *c = check_conn(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    int op = (int)luaL_checkinteger(L, 3);
    if (op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_PING && op != WS_OP_PONG)
        return luaL_argerror(L, 3, "not a data or ping/pong opcode");
    if (op >= WS_OP_CLOSE && n > WS_MAX_CONTROL)
        return luaL_error(L, "a ping or pong carries at most 125 bytes (got %d)", (int)n);
    if (op == WS_OP_TEXT && !websocket_utf8_valid(data, n))
        return luaL_error(L, "send: the text is not UTF-8 (send bytes with \"binary\")");
    if (!c || c->closing || c->closed) return push_closed(L);
    size_t len;
    char *frame;
    if (!c->out_head && ws_fits_window(c, n + WS_MAX_HEADER)) {
        unsigned char hd[WS_MAX_HEADER];
        size_t hn = websocket_frame_header(hd, op, n);
        ws_count_frame(c, hn + n);
        if (hn + n <= 4096) {
            ws_emit_frame(c, op, data, n);
        } else if ((frame = ws_build_frame(op, data, n, &len))) {
            ws_emit(c, frame, len);
            free(frame);
        } else {
            return luaL_error(L, "out of memory");
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    lbk_task *t = sched_running(g->sched, L, "websocket send");
    if (c->out_count >= WS_MAX_WAITING || c->out_bytes + n > WS_MAX_WAITING_BYTES) {
        log_warn("websocket %u: %d frames (%zu bytes) wait to be sent: the handler sends faster "
                 "than Mongrel2 may be given them; closing the connection (1008)",
                 c->id, c->out_count, c->out_bytes);
        ws_fail(c, 1008, "sending too fast");
        return push_closed(L);
    }
    if (!(frame = ws_build_frame(op, data, n, &len))) return luaL_error(L, "out of memory");
    ws_pending *p = ws_queue_frame(c, frame, len, t);
    free(frame);
    if (!p) return luaL_error(L, "out of memory");
    return sched_wait(L, t, c, -1, ws_undo_send, 0);
}

/* ws.close(handle [, code [, reason]]) → true | nil, "closed" */
static int l_ws_close(lua_State *L)
{
    ws_conn *c = check_conn(L, 1);
    int code = (int)luaL_optinteger(L, 2, 1000);
    size_t n = 0;
    const char *reason = luaL_optlstring(L, 3, "", &n);
    if (!ws_close_code_ok(code) || code == 1005)
        return luaL_argerror(L, 2, "a close code is 1000-1003, 1007-1011 or 3000-4999");
    if (n > WS_MAX_CONTROL - 2) return luaL_argerror(L, 3, "a close reason has at most 123 bytes");
    if (!websocket_utf8_valid(reason, n)) return luaL_argerror(L, 3, "the reason is not UTF-8");
    if (!c || c->closed) return push_closed(L);
    ws_start_close(c, code, reason, n);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws.release(handle): the session is over. Threads of the request still
 * waiting (a channel listener) are woken with nil, "closed". */
static int l_ws_release(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = host_req_from_handle(g->host, luaL_checknumber(L, 1));
    if (!r || !r->ws) return 0;
    ws_conn *c = r->ws;
    if (!c->closed) {
        ws_start_close(c, 1001, "", 0);
        ws_close_now(c);
    }
    ws_unregister(g->host, c);
    slice sender = r->m2.sender;
    host_cancel_conn(g->host, sender, r->m2.conn_id);
    return 0;
}

/* ws.frame(data, opcode) → the bytes of one server frame (for app:ws_deliver). */
static int l_ws_frame(lua_State *L)
{
    size_t n, len;
    const char *data = luaL_checklstring(L, 1, &n);
    int op = (int)luaL_optinteger(L, 2, WS_OP_TEXT);
    if (op < 0 || op > 0xf) return luaL_argerror(L, 2, "not an opcode");
    char *f = ws_build_frame(op, data, n, &len);
    if (!f) return luaL_error(L, "out of memory");
    lua_pushlstring(L, f, len);
    free(f);
    return 1;
}

/* ws.count() → open WebSocket connections of this worker */
static int l_ws_count(lua_State *L)
{
    lubeck *h = gen_of(L)->host;
    lua_pushinteger(L, h->websockets ? (lua_Integer)h->websockets->count : 0);
    return 1;
}

static const luaL_Reg ws_functions[] = {
    { "accept", l_ws_accept },
    { "receive", l_ws_receive },
    { "send", l_ws_send },
    { "close", l_ws_close },
    { "release", l_ws_release },
    { "frame", l_ws_frame },
    { "count", l_ws_count },
    { NULL, NULL }
};

void websocket_open(lua_State *L, lbk_gen *g)
{
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, ws_functions, 1);
}
