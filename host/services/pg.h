/* lubeck.pg: PostgreSQL through libpq, driven by the host's loop.
 *   pg.c        the driver: connecting, one step at a time (send, flush, read
 *               every result), cancelling, the idle pool keyed by the whole DSN
 *   pg_listen.c one LISTEN connection per DSN and process, feeding channels
 *   pg_types.c  text values to Lua by type, Lua values to parameter text
 *   lua_pg.c    the Lua binding (core.pg_*), which suspends the calling task
 * The driver knows nothing of Lua or tasks: each step ends in a callback. */
#ifndef LUBECK_PG_H
#define LUBECK_PG_H

#include <libpq-fe.h>

#include "host.h"

typedef struct pg_conn pg_conn;

/* A step ended: failed is 0, or 1 with pg_conn_error() set (the connection
 * is then unusable). An SQL error is not a failure: it is the result. */
typedef void (*pg_done_fn)(pg_conn *c, int failed, void *ud);
/* A watched idle connection got input (or lost its server: ok = 0). */
typedef void (*pg_input_fn)(pg_conn *c, int ok, void *ud);

/* Starts connecting to dsn (a URI or key=value string); done is called once.
 * NULL with err set when libpq refuses the string at once. */
pg_conn *pg_conn_connect(lubeck *h, const char *dsn, pg_done_fn done, void *ud, char *err, size_t errlen);
/* After a PQsend* on pg_conn_pq(c): flushes, reads every result, then calls
 * done from the loop (never from inside this call). -1 when the send already
 * failed (pg_conn_error says why; done is not called). */
int pg_conn_wait(pg_conn *c, pg_done_fn done, void *ud);
/* Reads what arrives on an idle connection (notifications) until unwatched. */
void pg_conn_watch(pg_conn *c, pg_input_fn fn, void *ud);
void pg_conn_unwatch(pg_conn *c);

PGconn *pg_conn_pq(pg_conn *c);
const char *pg_conn_key(pg_conn *c);
const char *pg_conn_error(pg_conn *c);
int pg_conn_reused(pg_conn *c);
/* The step's result, now the caller's (PQclear it): the first error, else the
 * last result. NULL when the step had none. */
PGresult *pg_conn_take_result(pg_conn *c);

/* Why c may not be pooled ("in a transaction", "busy", ...), or NULL. */
const char *pg_conn_dirty(pg_conn *c);
/* Ends a step in progress: a running query is cancelled on the server (on a
 * helper thread, PQcancel blocks) and the connection closed; it is never
 * pooled in an unknown state. */
void pg_conn_abort(pg_conn *c);
void pg_conn_close(pg_conn *c);

/* The pool: idle connections of one host, by the whole DSN. take → NULL when
 * none; put → 0 pooled, or -1 when c is not clean (then closed, *why set). */
pg_conn *pg_pool_take(lubeck *h, const char *dsn);
int pg_pool_put(pg_conn *c, double idle, int size, const char **why);
int pg_pool_count(lubeck *h);

/* Prepared statements of a connection, by SQL text. */
typedef struct pg_stmt {
    struct pg_stmt *next;
    char name[24];               /* "" for the unnamed statement (cache full) */
    int described;               /* nparams and types are known */
    int nparams;
    Oid *types;
    char sql[];
} pg_stmt;
pg_stmt *pg_stmt_find(pg_conn *c, const char *sql);
pg_stmt *pg_stmt_add(pg_conn *c, const char *sql);   /* NULL: out of memory */
void pg_stmt_forget(pg_conn *c, pg_stmt *s);

/* pg_listen.c: NOTIFY on channel of dsn → channel_publish(h, channel, ...)
 * with the payload string. Connects on the next loop iteration; reconnects
 * with backoff. 0, or -1 when out of memory. */
int pg_listen(lubeck *h, const char *dsn, const char *channel);
void pg_listen_free_all(lubeck *h);

/* pg_types.c */
enum {
    PG_BOOL = 16, PG_BYTEA = 17, PG_INT8 = 20, PG_INT2 = 21, PG_INT4 = 23, PG_TEXT = 25,
    PG_OID = 26, PG_JSON = 114, PG_FLOAT4 = 700, PG_FLOAT8 = 701, PG_UNKNOWN = 705,
    PG_TIMESTAMP = 1114, PG_TIMESTAMPTZ = 1184, PG_NUMERIC = 1700, PG_JSONB = 3802
};
/* The element type of a built-in array type, or 0 when oid is not one. */
Oid pg_array_elem(Oid oid);
/* Pushes the Lua value of a field in text format. json_idx: a stack index of
 * a JSON decoder (0: JSON stays text). Malformed text is pushed as is. */
void pg_push_value(lua_State *L, Oid type, const char *s, size_t len, int json_idx);
/* Pushes the text of the Lua list at idx as an array literal of elem type
 * (nil/lightuserdata NULL are NULL, tables nest); NULL on success, or why
 * not (nothing pushed). */
const char *pg_push_array_literal(lua_State *L, int idx, Oid elem);
/* A number as PostgreSQL reads it back exactly. */
void pg_format_number(lua_Number x, char *out, size_t len);

/* What the host keeps for pg (h->pg), made on first use. */
struct lbk_pg {
    pg_conn *pool;               /* idle connections, newest first */
    struct pg_listener *listeners;
};
struct lbk_pg *pg_state(lubeck *h);
void pg_free_all(lubeck *h);   /* pool and listeners (lubeck_free) */

/* lua_pg.c: adds the pg_* functions to the lubeck.core table on top */
void pg_open(lua_State *L, lbk_gen *g);

#endif
