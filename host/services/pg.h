/* lubeck.pg: PostgreSQL through libpq, driven by the host's loop.
 *   pg.c        the driver: connecting, one step at a time (send, flush, read
 *               every result), cancelling, the idle pool keyed by the whole DSN
 *   pg_listen.c one LISTEN connection per DSN and process, handing each
 *               NOTIFY to the function the pool was made with (channels)
 *   pg_types.c  PostgreSQL's text formats read into C values
 * The Lua face is in host/lua/: lua_pg.c (core.pg, which suspends the
 * calling task) and lua_pg_types.c (results to Lua values, Lua lists to
 * array literals). The driver knows nothing of Lua or tasks: each step ends
 * in a callback. */
#ifndef LUBECK_PG_H
#define LUBECK_PG_H

#include <stddef.h>
#include <ev.h>
#include <libpq-fe.h>

typedef struct pg_conn pg_conn;

/* What one host keeps for PostgreSQL: the idle pool and the LISTEN
 * connections. */
typedef struct lbk_pg lbk_pg;

/* A NOTIFY arrived on channel (name) with payload, already encoded as
 * lubeck.channel carries values (a JSON list of one string). */
typedef void (*pg_notify_fn)(void *ud, const char *name, size_t name_len, const char *payload, size_t len);

/* Runs on loop; notify (with ud) receives what pg_listen hears. NULL: out of memory. */
lbk_pg *pg_new(struct ev_loop *loop, pg_notify_fn notify, void *ud);
/* Closes the pool and the listeners (no step may be in flight any more). */
void pg_free(lbk_pg *pg);

/* A step ended: failed is 0, or 1 with pg_conn_error() set (the connection
 * is then unusable). An SQL error is not a failure: it is the result. */
typedef void (*pg_done_fn)(pg_conn *c, int failed, void *ud);
/* A watched idle connection got input (or lost its server: ok = 0). */
typedef void (*pg_input_fn)(pg_conn *c, int ok, void *ud);

/* Starts connecting to dsn (a URI or key=value string); done is called once.
 * NULL with err set when libpq refuses the string at once. */
pg_conn *pg_conn_connect(lbk_pg *pg, const char *dsn, pg_done_fn done, void *ud, char *err, size_t errlen);
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
pg_conn *pg_pool_take(lbk_pg *pg, const char *dsn);
int pg_pool_put(pg_conn *c, double idle, int size, const char **why);
int pg_pool_count(const lbk_pg *pg);

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

/* pg_listen.c: NOTIFY on channel of dsn → the notify function. Connects on
 * the next loop iteration; reconnects with backoff. 0, or -1 when out of memory. */
int pg_listen(lbk_pg *pg, const char *dsn, const char *channel);

/* pg_types.c */
enum {
    PG_BOOL = 16, PG_BYTEA = 17, PG_INT8 = 20, PG_INT2 = 21, PG_INT4 = 23, PG_TEXT = 25,
    PG_OID = 26, PG_JSON = 114, PG_FLOAT4 = 700, PG_FLOAT8 = 701, PG_UNKNOWN = 705,
    PG_TIMESTAMP = 1114, PG_TIMESTAMPTZ = 1184, PG_NUMERIC = 1700, PG_JSONB = 3802
};
/* The element type of a built-in array type, or 0 when oid is not one. */
Oid pg_array_elem(Oid oid);

/* Reading a field's text. Each returns 0 with the value, or -1 when the text
 * is not of that shape (the caller then keeps the text as it is). */
/* An integer a double holds exactly (|v| <= 2^53: past it a double rounds). */
int pg_text_integer(const char *s, size_t len, double *out);
/* A float, also NaN, Infinity, -Infinity. */
int pg_text_float(const char *s, size_t len, double *out);
/* bytea's hex or escape output as its raw bytes: *out is malloc'd (the
 * caller frees it), *n its length. */
int pg_text_bytea(const char *s, size_t len, char **out, size_t *n);
/* "2024-01-02 03:04:05.5+00" → "2024-01-02T03:04:05.5Z" (RFC 3339); with a
 * zone, "+05:30" stays and "-08" becomes "-08:00". out holds 64 bytes; *n is
 * the length written. "infinity" and BC dates are -1. */
int pg_text_timestamp(const char *s, size_t len, int with_zone, char out[64], size_t *n);

/* An array literal ({1,2,NULL}, {{1,2},{3,4}}, {"a b","with \"quotes\""},
 * "[0:1]={1,2}") read as events: each returns 0, or -1 to stop the read. */
typedef struct pg_array_reader {
    int (*open)(void *ud);       /* a list begins (the outer one first) */
    /* an element's text (quotes and escapes removed; valid during the call),
     * or s = NULL for a NULL element */
    int (*element)(void *ud, const char *s, size_t n);
    int (*close)(void *ud);      /* the innermost open list ends */
} pg_array_reader;
#define PG_MAX_ARRAY_DEPTH 8
/* 0 when the whole text is one well-formed array nesting at most
 * PG_MAX_ARRAY_DEPTH deep; -1 when it is not (or a function stopped it,
 * or out of memory): the events seen so far are then void. */
int pg_array_read(const char *s, size_t len, const pg_array_reader *r, void *ud);

/* A number as PostgreSQL reads it back exactly. */
void pg_format_number(double x, char *out, size_t len);

#endif
