/* udp(): the datagram cosocket, as ngx.socket.udp (lua-resty-dns sends its
 * queries this way), the Lua face. A connected UDP socket:
 * setpeername(ip, port) or setpeername("unix:/path"), send(datagram),
 * receive([size]) waits for one datagram up to the timeout. Peers are
 * addresses, not names: a name would need the resolver, and the libraries
 * that use UDP pass addresses. The socket calls are services/cosocket_udp.c. */
#define _GNU_SOURCE
#include "lua_cosocket.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define UDP_MT "lubeck.UDPSocket"
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_MAX 65536

typedef struct lbk_udp {
    lubeck *h;
    int fd;
    double timeout;
    lbk_task *waiter;
    int self_ref;
    size_t want;                 /* the receive's size limit */
    ev_io io;
} lbk_udp;

static lbk_udp *check_udp(lua_State *L, const char *method)
{
    lbk_udp *u = lua_touserdata(L, 1);
    if (u && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, UDP_MT);
        int same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same) return u;
    }
    luaL_error(L, "bad self to '%s' (lubeck.UDPSocket expected, got %s)", method,
               luaL_typename(L, 1));
    return NULL;
}

static int push_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static void wait_clear(lbk_udp *u)
{
    lua_State *L = u->waiter ? u->waiter->gen->L : NULL;
    ev_io_stop(u->h->loop, &u->io);
    if (L && u->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
    u->self_ref = LUA_NOREF;
    u->waiter = NULL;
}

static void close_udp(lbk_udp *u)
{
    if (u->waiter) {   /* a receive waiting elsewhere: nil, "closed" on the next turn */
        lbk_task *t = u->waiter;
        wait_clear(u);
        sched_wake_result(t, 0, "closed");
    }
    if (u->fd >= 0) close(u->fd);
    u->fd = -1;
}

/* One datagram on L: 1 value pushed, 0 nothing yet, or 2 (nil, err). */
static int read_datagram(lbk_udp *u, lua_State *L)
{
    char stack[DEFAULT_MAX];
    char *buf = u->want <= sizeof stack ? stack : malloc(u->want);
    if (!buf) return push_fail(L, "out of memory");
    const char *err = NULL;
    ssize_t n = udp_recv(u->fd, buf, u->want, &err);
    int nvalues = 0;
    if (n >= 0) {
        lua_pushlstring(L, buf, (size_t)n);
        nvalues = 1;
    } else if (n == -2) {
        nvalues = push_fail(L, err);
    }
    if (buf != stack) free(buf);
    return nvalues;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    lbk_udp *u = w->data;
    if (!u->waiter) return;
    lbk_task *t = u->waiter;
    int n = read_datagram(u, t->co);
    if (!n) return;
    wait_clear(u);
    sched_complete(t, n);
}

static void undo_receive(lbk_task *t)
{
    lbk_udp *u = t->wait_on;
    if (u) wait_clear(u);
}

/* udp:setpeername(ip, port) | udp:setpeername("unix:/path") → 1 | nil, err */
static int l_setpeername(lua_State *L)
{
    lbk_udp *u = check_udp(L, "setpeername");
    size_t hlen;
    const char *host = luaL_checklstring(L, 2, &hlen);
    int port = 0;
    if (hlen > 5 && memcmp(host, "unix:", 5) == 0) {
        if (hlen - 5 >= sizeof ((struct sockaddr_un *)0)->sun_path)
            return luaL_argerror(L, 2, "unix socket path too long");
    } else {
        port = (int)luaL_checkinteger(L, 3);
        if (port <= 0 || port > 65535) return luaL_argerror(L, 3, "bad port (1 to 65535)");
        struct sockaddr_storage ss;
        socklen_t alen;
        if (cosocket_addr(host, port, &ss, &alen) != 0)   /* a name: the socket stays as it is */
            return push_fail(L, "udp peers are IP addresses (a name is not resolved here)");
    }
    close_udp(u);
    const char *err = NULL;
    u->fd = udp_open(host, port, &err);
    if (u->fd < 0) return push_fail(L, err);
    lua_pushinteger(L, 1);
    return 1;
}

/* udp:send(datagram: string, number or nested array) → 1 | nil, err */
static int l_send(lua_State *L)
{
    lbk_udp *u = check_udp(L, "send");
    int type = lua_type(L, 2);
    if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TTABLE)
        return luaL_error(L, "bad argument #1 to 'send' (string, number or array table expected, "
                             "got %s)", luaL_typename(L, 2));
    lua_settop(L, 2);
    if (type == LUA_TTABLE) cosocket_flatten(L, 2);
    size_t len;
    const char *data = lua_tolstring(L, 2, &len);
    if (u->fd < 0) return push_fail(L, "closed");
    const char *err = NULL;
    if (udp_send(u->fd, data, len, &err) != 0) return push_fail(L, err);
    lua_pushinteger(L, 1);
    return 1;
}

/* udp:receive([size]) → datagram | nil, err (waits up to the timeout) */
static int l_receive(lua_State *L)
{
    lbk_udp *u = check_udp(L, "receive");
    lua_Number size = lua_isnoneornil(L, 2) ? DEFAULT_MAX : luaL_checknumber(L, 2);
    if (size < 1 || size > DEFAULT_MAX) return luaL_error(L, "bad argument #1 to 'receive' (size: 1 to 65536)");
    if (u->fd < 0) return push_fail(L, "closed");
    if (u->waiter) return push_fail(L, "socket busy reading");
    lbk_task *t = sched_running(&u->h->sched, L, "udp:receive");
    u->want = (size_t)size;
    int n = read_datagram(u, L);
    if (n) return n;
    u->waiter = t;
    lua_pushvalue(L, 1);
    u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ev_io_set(&u->io, u->fd, EV_READ);
    ev_io_start(u->h->loop, &u->io);
    return sched_wait(L, t, u, u->timeout, undo_receive, 0);
}

static int l_settimeout(lua_State *L)
{
    lbk_udp *u = check_udp(L, "settimeout");
    lua_Number ms = luaL_checknumber(L, 2);
    if (ms < 0) return luaL_error(L, "bad argument #1 to 'settimeout' (bad timeout value)");
    u->timeout = ms == 0 ? DEFAULT_TIMEOUT : ms / 1000.0;
    return 0;
}

static int l_close(lua_State *L)
{
    lbk_udp *u = check_udp(L, "close");
    if (u->fd < 0) return push_fail(L, "closed");
    close_udp(u);
    lua_pushinteger(L, 1);
    return 1;
}

static int l_gc(lua_State *L)
{
    lbk_udp *u = lua_touserdata(L, 1);
    close_udp(u);
    return 0;
}

static int l_tostring(lua_State *L)
{
    lua_pushfstring(L, "lubeck.UDPSocket: %p", lua_touserdata(L, 1));
    return 1;
}

static int l_udp(lua_State *L)
{
    lbk_gen *g = lua_touserdata(L, lua_upvalueindex(1));
    lbk_udp *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->h = g->host;
    u->fd = -1;
    u->timeout = DEFAULT_TIMEOUT;
    u->self_ref = LUA_NOREF;
    ev_init(&u->io, io_cb);
    u->io.data = u;
    luaL_getmetatable(L, UDP_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void udp_open_class(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = {
        { "setpeername", l_setpeername }, { "send", l_send }, { "receive", l_receive },
        { "settimeout", l_settimeout }, { "close", l_close }, { NULL, NULL }
    };
    host_lua_class(L, UDP_MT, methods, l_gc, l_tostring);
    static const luaL_Reg functions[] = { { "udp", l_udp }, { NULL, NULL } };
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, functions, 1);
}
