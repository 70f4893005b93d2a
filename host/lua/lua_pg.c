/* The Lua side of lubeck.pg (lua/lubeck/pg.lua wraps it):
 *   core.pg.connect(dsn, timeout_ms) → conn | nil, err
 *   conn:query(sql, ...) → rows | nil, err, fields
 *   conn:keepalive([idle_ms [, size]]) → 1 | nil, why     conn:close()
 *   conn:settimeout(ms)   conn:backend_pid()   conn:reused()   conn:tx_status()
 *   core.pg.listen(dsn, channel)   core.pg.codec(encode, decode)   core.pg.pooled()
 * A call that talks to the server suspends the calling task until the driver
 * (pg.c) calls back. A query with parameters runs as a prepared statement kept
 * per connection: prepared and described once (the parameter types decide how
 * each value is sent: bytea as raw bytes, arrays as array literals, json as
 * JSON), then executed by name. Results are built on the generation's main
 * state, where the JSON decoder may run, and moved to the waiting coroutine. */
#include "lua_pg.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

#define CONN_MT "lubeck.PgConn"
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_IDLE 60.0
#define DEFAULT_POOL_SIZE 30
#define MAX_PARAMS 1000

enum step { Q_NONE, Q_CONNECT, Q_SIMPLE, Q_PREPARE, Q_DESCRIBE, Q_EXEC };

typedef struct lbk_pgconn {
    lbk_gen *gen;
    pg_conn *c;                  /* NULL once closed, pooled or aborted */
    double timeout;              /* seconds, < 0: none */
    enum step step;
    lbk_task *waiter;
    int self_ref;                /* keeps the userdata alive while waiting */
    int args_ref;                /* { sql, param1, ... } of the query in flight */
    int nparams;
    pg_stmt *stmt;
} lbk_pgconn;

static char json_encode_key, json_decode_key;   /* registry keys: their addresses */

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static lbk_pgconn *check_conn(lua_State *L)
{
    return luaL_checkudata(L, 1, CONN_MT);
}

static void busy(lua_State *L, lbk_pgconn *db)
{
    if (db->waiter) luaL_error(L, "pg: connection busy: another coroutine is using it");
}

static int push_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static void drop_conn(lbk_pgconn *db)
{
    pg_conn_close(db->c);
    db->c = NULL;
}

/* ---- the wait ------------------------------------------------------------- */

static void clear_wait(lbk_pgconn *db)
{
    lua_State *L = db->gen->L;   /* the registry is the state's, whichever thread */
    luaL_unref(L, LUA_REGISTRYINDEX, db->args_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, db->self_ref);
    db->args_ref = db->self_ref = LUA_NOREF;
    db->waiter = NULL;
    db->step = Q_NONE;
    db->stmt = NULL;
}

/* Timeout, or the request ended: the query is cancelled and the connection
 * closed, so nothing half-read is ever reused. */
static void undo_wait(lbk_task *t)
{
    lbk_pgconn *db = t->wait_on;
    if (!db) return;
    if (db->c) {
        pg_conn_abort(db->c);
        db->c = NULL;
    }
    clear_wait(db);
}

static void on_step(pg_conn *c, int failed, void *ud);

/* Suspends the task until on_step resumes it; the userdata is at ud_idx. */
static int begin_wait(lua_State *L, lbk_task *t, lbk_pgconn *db, int ud_idx, enum step step)
{
    db->step = step;
    db->waiter = t;
    lua_pushvalue(L, ud_idx);
    db->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return sched_wait(L, t, db, db->timeout, undo_wait, 0);
}

static void resume(lbk_pgconn *db, int nvalues)
{
    lbk_task *t = db->waiter;
    clear_wait(db);
    sched_complete(t, nvalues);
}

/* ---- results --------------------------------------------------------------- */

static void push_registry(lua_State *L, void *key)
{
    lua_pushlightuserdata(L, key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

/* nil, "ERROR 23505: message (detail: ...)", { sqlstate=, message=, ... } */
static int push_sql_error(lua_State *L, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    const char *position = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    if (!msg) msg = PQresultErrorMessage(res);
    lua_pushnil(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, severity ? severity : "ERROR");
    if (state) { luaL_addchar(&b, ' '); luaL_addstring(&b, state); }
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, msg);
    if (position) { luaL_addstring(&b, " (position "); luaL_addstring(&b, position); luaL_addchar(&b, ')'); }
    if (detail) { luaL_addstring(&b, " (detail: "); luaL_addstring(&b, detail); luaL_addchar(&b, ')'); }
    luaL_pushresult(&b);
    lua_createtable(L, 0, 6);
    const char *names[] = { "sqlstate", "severity", "message", "detail", "hint" };
    const char *values[] = { state, severity, msg, detail, hint };
    for (int i = 0; i < 5; i++) {
        if (!values[i]) continue;
        lua_pushstring(L, values[i]);
        lua_setfield(L, -2, names[i]);
    }
    if (position) {
        lua_pushnumber(L, atof(position));
        lua_setfield(L, -2, "position");
    }
    return 3;
}

/* The command tag's words before its counts: "INSERT 0 1" → "INSERT". */
static void push_command(lua_State *L, const char *tag)
{
    size_t n = strlen(tag);
    while (n > 0) {
        size_t w = n;
        while (w > 0 && tag[w - 1] != ' ') w--;
        if (strspn(tag + w, "0123456789") != n - w || w == 0) break;
        n = w - 1;
    }
    lua_pushlstring(L, tag, n);
}

/* rows: a list of { column = value } (a NULL leaves its column out), whose
 * metatable's __index is { command=, tag=, affected=, columns= }: rows.affected
 * reads it while the list still encodes as a plain JSON array. */
static void push_rows(lua_State *L, const PGresult *res)
{
    int nrows = PQntuples(res), nf = PQnfields(res);
    luaL_checkstack(L, 8, "pg: results");
    int base = lua_gettop(L);
    push_registry(L, &json_decode_key);
    int decoder = lua_isfunction(L, -1) ? lua_gettop(L) : 0;
    lua_createtable(L, nf, 0);
    int names = lua_gettop(L);
    for (int f = 0; f < nf; f++) {
        lua_pushstring(L, PQfname(res, f));
        lua_rawseti(L, names, f + 1);
    }
    lua_createtable(L, nrows, 0);
    int rows = lua_gettop(L);
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, nf);
        for (int f = 0; f < nf; f++) {
            if (PQgetisnull(res, r, f)) continue;
            lua_rawgeti(L, names, f + 1);
            pg_push_value(L, PQftype(res, f), PQgetvalue(res, r, f), (size_t)PQgetlength(res, r, f), decoder);
            lua_rawset(L, -3);
        }
        lua_rawseti(L, rows, r + 1);
    }
    lua_createtable(L, 0, 1);   /* the metatable */
    lua_createtable(L, 0, 4);   /* __index */
    const char *tag = PQcmdStatus((PGresult *)res);
    lua_pushstring(L, tag);
    lua_setfield(L, -2, "tag");
    push_command(L, tag);
    lua_setfield(L, -2, "command");
    const char *affected = PQcmdTuples((PGresult *)res);
    if (*affected) {
        lua_pushnumber(L, atof(affected));
        lua_setfield(L, -2, "affected");
    }
    lua_pushvalue(L, names);
    lua_setfield(L, -2, "columns");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, rows);
    lua_pushvalue(L, rows);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

/* Pushes the outcome of a finished query on the waiting coroutine. */
static int push_outcome(lbk_pgconn *db, PGresult *res)
{
    lua_State *co = db->waiter->co;
    if (!res) return push_fail(co, "no result");
    ExecStatusType st = PQresultStatus(res);
    int n;
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
        n = push_sql_error(co, res);
    } else {
        lua_State *L = db->gen->L;
        int top = lua_gettop(L);
        push_rows(L, res);
        lua_xmove(L, co, 1);
        lua_settop(L, top);
        n = 1;
    }
    PQclear(res);
    return n;
}

/* ---- parameters --------------------------------------------------------- */

static int is_json(Oid t) { return t == PG_JSON || t == PG_JSONB; }

/* Pushes the text of parameter i (args table at idx) for a parameter of type
 * t; *is_null / *binary say how to send it. NULL, or why not. */
static const char *push_param(lua_State *L, int idx, int i, Oid t, int *is_null, int *binary)
{
    char num[64];
    *is_null = *binary = 0;
    lua_rawgeti(L, idx, i + 2);   /* args[1] is the SQL */
    switch (lua_type(L, -1)) {
    case LUA_TNIL:
        *is_null = 1;
        return NULL;
    case LUA_TLIGHTUSERDATA:     /* pg.null (cjson.null) */
        *is_null = 1;
        return NULL;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, -1) ? "t" : "f");
        break;
    case LUA_TNUMBER:
        pg_format_number(lua_tonumber(L, -1), num, sizeof num);
        lua_pushstring(L, num);
        break;
    case LUA_TSTRING: {
        if (t == PG_BYTEA) { *binary = 1; return NULL; }   /* the bytes as they are */
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (memchr(s, '\0', len)) {
            lua_pop(L, 1);
            return "holds a NUL byte (only a bytea parameter takes any bytes)";
        }
        return NULL;
    }
    case LUA_TTABLE: {
        Oid elem = pg_array_elem(t);
        if (elem && !is_json(elem)) {
            const char *why = pg_push_array_literal(L, -1, elem);
            if (why) { lua_pop(L, 1); return why; }
            break;
        }
        push_registry(L, &json_encode_key);
        if (!lua_isfunction(L, -1)) { lua_pop(L, 2); return "no JSON encoder"; }
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            lua_remove(L, -2);
            return lua_tostring(L, -1);   /* left on the stack for the caller's message */
        }
        break;
    }
    default:
        lua_pop(L, 1);
        return "cannot be sent";
    }
    lua_remove(L, -2);
    return NULL;
}

/* Sends the prepared statement with the arguments, converted by the types the
 * server described. Runs on L (the task itself, or the generation's main
 * state from a callback). NULL, or why not (a message on L's stack). */
static const char *send_exec(lbk_pgconn *db, lua_State *L)
{
    pg_stmt *s = db->stmt;
    if (s->nparams != db->nparams) {
        lua_pushfstring(L, "pg: the statement takes %d parameters, %d given", s->nparams, db->nparams);
        return lua_tostring(L, -1);
    }
    int n = s->nparams, top = lua_gettop(L);
    const char *vstack[16];
    int lstack[16], fstack[16];
    const char **values = n <= 16 ? vstack : malloc(sizeof *values * (size_t)n);
    int *lengths = n <= 16 ? lstack : malloc(sizeof *lengths * (size_t)n);
    int *formats = n <= 16 ? fstack : malloc(sizeof *formats * (size_t)n);
    const char *why = NULL;
    if (!values || !lengths || !formats || !lua_checkstack(L, n + 8)) {
        lua_pushliteral(L, "pg: out of memory");
        why = lua_tostring(L, -1);
        goto done;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, db->args_ref);
    int args = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        int is_null, binary;
        const char *bad = push_param(L, args, i, s->types[i], &is_null, &binary);
        if (bad) {
            lua_pushfstring(L, "pg: parameter $%d %s", i + 1, bad);
            why = lua_tostring(L, -1);
            goto done;
        }
        if (is_null) {
            values[i] = NULL;
            lengths[i] = formats[i] = 0;
            continue;
        }
        size_t len;
        values[i] = lua_tolstring(L, -1, &len);   /* stays on the stack until sent */
        lengths[i] = (int)len;
        formats[i] = binary;
    }
    if (!PQsendQueryPrepared(pg_conn_pq(db->c), s->name, n, values, lengths, formats, 0)) {
        lua_pushstring(L, PQerrorMessage(pg_conn_pq(db->c)));
        why = lua_tostring(L, -1);
    }
done:
    if (values != vstack) free((void *)values);
    if (lengths != lstack) free(lengths);
    if (formats != fstack) free(formats);
    if (why) {   /* keep only the message */
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    } else {
        lua_settop(L, top);
    }
    return why;
}

/* ---- the driver's callback ------------------------------------------------- */

/* A send on a live connection failed, or the server went away mid-step. */
static void fail_now(lbk_pgconn *db, const char *err)
{
    lua_State *co = db->waiter->co;
    lua_pushnil(co);
    lua_pushstring(co, err);
    drop_conn(db);
    resume(db, 2);
}

static void next_step(lbk_pgconn *db, enum step step)
{
    db->step = step;
    if (pg_conn_wait(db->c, on_step, db) != 0) fail_now(db, pg_conn_error(db->c));
}

static void on_step(pg_conn *c, int failed, void *ud)
{
    lbk_pgconn *db = ud;
    lua_State *co = db->waiter->co;
    if (failed) return fail_now(db, pg_conn_error(c));
    if (db->step == Q_CONNECT) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, db->self_ref);
        return resume(db, 1);
    }
    PGresult *res = pg_conn_take_result(c);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int sql_error = st == PGRES_FATAL_ERROR;
    switch (db->step) {
    case Q_PREPARE:
        if (sql_error) break;
        PQclear(res);
        if (!PQsendDescribePrepared(pg_conn_pq(c), db->stmt->name))
            return fail_now(db, PQerrorMessage(pg_conn_pq(c)));
        return next_step(db, Q_DESCRIBE);
    case Q_DESCRIBE: {
        if (sql_error) break;
        pg_stmt *s = db->stmt;
        s->nparams = PQnparams(res);
        s->types = calloc((size_t)(s->nparams ? s->nparams : 1), sizeof *s->types);
        for (int i = 0; s->types && i < s->nparams; i++) s->types[i] = PQparamtype(res, i);
        s->described = s->types != NULL;
        PQclear(res);
        if (!s->described) return fail_now(db, "pg: out of memory");
        lua_State *L = db->gen->L;
        int top = lua_gettop(L);
        const char *why = send_exec(db, L);
        if (why) {   /* the connection is fine: only this call fails */
            lua_pushnil(co);
            lua_pushstring(co, why);
            lua_settop(L, top);
            return resume(db, 2);
        }
        return next_step(db, Q_EXEC);
    }
    default:
        break;
    }
    /* A statement that failed to prepare, or that the session lost (DEALLOCATE,
     * DISCARD ALL: SQLSTATE 26000), is prepared again next time. */
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (sql_error && (db->step == Q_PREPARE || db->step == Q_DESCRIBE ||
                      (db->step == Q_EXEC && state && strcmp(state, "26000") == 0)))
        pg_stmt_forget(c, db->stmt);
    resume(db, push_outcome(db, res));
}

/* ---- methods ----------------------------------------------------------------- */

static int refused(lua_State *L, lbk_task *t)
{
    if (t->req && t->req->cancelled) return push_fail(L, t->req->cancelled);
    return 0;
}

/* conn:query(sql, ...) → rows | nil, err [, fields] */
static int l_query(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    int nparams = lua_gettop(L) - 2;
    busy(L, db);
    if (nparams > MAX_PARAMS) return luaL_error(L, "pg: at most %d parameters", MAX_PARAMS);
    for (int i = 3; i <= lua_gettop(L); i++) {
        int t = lua_type(L, i);
        if (t == LUA_TFUNCTION || t == LUA_TTHREAD || t == LUA_TUSERDATA ||
            (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, i)))
            return luaL_argerror(L, i, "a parameter is nil, a boolean, number, string or table");
    }
    if (!db->c) return push_fail(L, "closed");
    lbk_task *t = sched_running(db->gen->sched, L, "db:query");
    int n = refused(L, t);
    if (n) return n;
    PGconn *pq = pg_conn_pq(db->c);
    if (nparams == 0) {   /* simple protocol: several statements may go at once */
        if (!PQsendQuery(pq, sql)) {
            const char *err = PQerrorMessage(pq);
            lua_pushnil(L);
            lua_pushstring(L, err);
            drop_conn(db);
            return 2;
        }
        if (pg_conn_wait(db->c, on_step, db) != 0) {
            n = push_fail(L, pg_conn_error(db->c));
            drop_conn(db);
            return n;
        }
        return begin_wait(L, t, db, 1, Q_SIMPLE);
    }
    lua_createtable(L, nparams + 1, 0);
    for (int i = 2; i <= nparams + 2; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, i - 1);
    }
    db->args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    db->nparams = nparams;
    pg_stmt *s = pg_stmt_find(db->c, sql);
    if (!s && !(s = pg_stmt_add(db->c, sql))) return luaL_error(L, "pg: out of memory");
    db->stmt = s;
    enum step step = Q_EXEC;
    if (s->described) {
        const char *why = send_exec(db, L);
        if (why) {
            luaL_unref(L, LUA_REGISTRYINDEX, db->args_ref);
            db->args_ref = LUA_NOREF;
            db->stmt = NULL;
            lua_pushnil(L);
            lua_insert(L, -2);
            return 2;
        }
    } else {
        step = Q_PREPARE;
        if (!PQsendPrepare(pq, s->name, sql, 0, NULL)) {
            luaL_unref(L, LUA_REGISTRYINDEX, db->args_ref);
            db->args_ref = LUA_NOREF;
            n = push_fail(L, PQerrorMessage(pq));
            drop_conn(db);
            return n;
        }
    }
    if (pg_conn_wait(db->c, on_step, db) != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, db->args_ref);
        db->args_ref = LUA_NOREF;
        n = push_fail(L, pg_conn_error(db->c));
        drop_conn(db);
        return n;
    }
    return begin_wait(L, t, db, 1, step);
}

static int l_settimeout(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    lua_Number ms = luaL_checknumber(L, 2);
    db->timeout = ms < 0 ? -1 : ms / 1000.0;
    return 0;
}

/* conn:keepalive([idle_ms [, size]]) → 1 | nil, why (then closed) */
static int l_keepalive(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    double idle = luaL_optnumber(L, 2, DEFAULT_IDLE * 1000) / 1000.0;
    int size = (int)luaL_optinteger(L, 3, DEFAULT_POOL_SIZE);
    busy(L, db);
    if (!db->c) return push_fail(L, "closed");
    const char *why;
    int rc = pg_pool_put(db->c, idle, size, &why);
    db->c = NULL;
    if (rc != 0) return push_fail(L, why);
    lua_pushinteger(L, 1);
    return 1;
}

static int l_backend_pid(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    if (!db->c) return push_fail(L, "closed");
    lua_pushinteger(L, PQbackendPID(pg_conn_pq(db->c)));
    return 1;
}

static int l_reused(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    lua_pushinteger(L, db->c ? pg_conn_reused(db->c) : 0);
    return 1;
}

/* "idle", "in a transaction", "in a failed transaction", "busy", "closed", ... */
static int l_state(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    const char *why = db->c ? pg_conn_dirty(db->c) : "closed";
    lua_pushstring(L, why ? why : "idle");
    return 1;
}

static int l_close(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    busy(L, db);
    if (!db->c) return push_fail(L, "closed");
    drop_conn(db);
    lua_pushinteger(L, 1);
    return 1;
}

/* A pending wait keeps the userdata alive, so a collected connection waits
 * for nothing unless the whole state is closing: then its query is cancelled. */
static int l_gc(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    if (db->c) {
        if (db->waiter) pg_conn_abort(db->c); else pg_conn_close(db->c);
        db->c = NULL;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbk_pgconn *db = check_conn(L);
    lua_pushfstring(L, "lubeck.PgConn (%s): %p", db->c ? "open" : "closed", (void *)db);
    return 1;
}

/* ---- module functions ----------------------------------------------------------- */

/* pg.connect(dsn [, timeout_ms]) → conn | nil, err */
static int l_connect(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    const char *dsn = luaL_checkstring(L, 1);
    lua_Number ms = luaL_optnumber(L, 2, DEFAULT_TIMEOUT * 1000);
    lbk_task *t = sched_running(g->sched, L, "pg.connect");
    int n = refused(L, t);
    if (n) return n;
    lbk_pgconn *db = lua_newuserdata(L, sizeof *db);
    memset(db, 0, sizeof *db);
    db->gen = g;
    db->timeout = ms < 0 ? -1 : ms / 1000.0;
    db->self_ref = db->args_ref = LUA_NOREF;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    db->c = pg_pool_take(g->host->pg, dsn);
    if (db->c) return 1;
    char err[256];
    db->c = pg_conn_connect(g->host->pg, dsn, on_step, db, err, sizeof err);
    if (!db->c) return push_fail(L, err);
    return begin_wait(L, t, db, lua_gettop(L), Q_CONNECT);
}

/* pg.codec(encode, decode): lubeck.pg's JSON functions for json parameters
 * and json/jsonb results */
static int l_codec(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushlightuserdata(L, &json_encode_key);
    lua_pushvalue(L, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &json_decode_key);
    lua_pushvalue(L, 2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

/* pg.listen(dsn, channel) → true */
static int l_listen(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    const char *dsn = luaL_checkstring(L, 1);
    size_t len;
    const char *channel = luaL_checklstring(L, 2, &len);
    if (len == 0 || len > 63) return luaL_argerror(L, 2, "a channel name is 1 to 63 bytes");
    if (pg_listen(g->host->pg, dsn, channel) != 0) return luaL_error(L, "pg.listen: out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_pooled(lua_State *L)
{
    lua_pushinteger(L, pg_pool_count(gen_of(L)->host->pg));
    return 1;
}

void pg_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = {
        { "query", l_query }, { "settimeout", l_settimeout }, { "keepalive", l_keepalive },
        { "backend_pid", l_backend_pid }, { "reused", l_reused }, { "state", l_state },
        { "close", l_close }, { NULL, NULL }
    };
    static const luaL_Reg functions[] = {
        { "connect", l_connect }, { "codec", l_codec }, { "listen", l_listen },
        { "pooled", l_pooled }, { NULL, NULL }
    };
    host_lua_class(L, CONN_MT, methods, l_gc, l_tostring);
    lua_pushlightuserdata(L, g);
    luaL_setfuncs(L, functions, 1);
}
