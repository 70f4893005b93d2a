/* The libpq driver: every connection is non-blocking and watched by one ev_io.
 * A connection does one thing at a time: connect (PQconnectPoll), a step (the
 * caller's PQsend*, then flush and read until PQgetResult says the command is
 * over), or watch (idle, reading notifications). Whoever started it is called
 * back when it ends. Idle connections wait in a per-host pool keyed by the
 * whole DSN, so two users' connections never mix. */
#define _GNU_SOURCE
#include "pg_state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define STMT_CACHE 64            /* named statements kept per connection */

enum state { ST_IDLE, ST_CONNECTING, ST_BUSY, ST_WATCH };

struct pg_conn {
    lbk_pg *pg;
    PGconn *pq;
    char *key;                   /* the DSN: the pool key */
    enum state state;
    unsigned broken : 1;         /* failed once: never reused */
    unsigned setup : 1;          /* the step is our own session setup */
    unsigned pooled : 1;
    ev_io io;
    pg_done_fn done;
    pg_input_fn input;
    void *ud;
    PGresult *result;
    char err[256];
    int reused;
    pg_stmt *stmts, *unnamed;
    int nstmts;
    unsigned stmt_serial;
    pg_conn *pool_next;
    ev_timer idle;
};

lbk_pg *pg_new(struct ev_loop *loop, pg_notify_fn notify, void *ud)
{
    lbk_pg *pg = calloc(1, sizeof *pg);
    if (!pg) return NULL;
    pg->loop = loop;
    pg->notify = notify;
    pg->notify_ud = ud;
    return pg;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void arm(pg_conn *c, int events)
{
    ev_io_stop(c->pg->loop, &c->io);
    ev_io_set(&c->io, PQsocket(c->pq), events);
    ev_io_start(c->pg->loop, &c->io);
}

/* libpq's messages end with a newline and may span lines: keep the first. */
static void set_error(pg_conn *c, const char *msg)
{
    snprintf(c->err, sizeof c->err, "%s", msg && *msg ? msg : "connection lost");
    char *nl = strchr(c->err, '\n');
    if (nl) *nl = '\0';
}

static void finish(pg_conn *c, int failed)
{
    ev_io_stop(c->pg->loop, &c->io);
    c->state = ST_IDLE;
    if (failed) c->broken = 1;
    pg_done_fn done = c->done;
    c->done = NULL;
    done(c, failed, c->ud);   /* may free c */
}

/* ---- a step: flush, then read results until the command is over ------------ */

static void keep_result(pg_conn *c, PGresult *r)
{
    if (c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
        PQclear(r);   /* the first error is the one that explains */
        return;
    }
    PQclear(c->result);
    c->result = r;
}

static void step_failed(pg_conn *c, const char *msg)
{
    c->broken = 1;
    if (c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR && !c->setup) {
        finish(c, 0);   /* e.g. "terminating connection due to administrator command" */
        return;
    }
    set_error(c, msg);
    finish(c, 1);
}

static void step_over(pg_conn *c)
{
    if (c->setup) {
        c->setup = 0;
        int bad = c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR;
        if (bad) set_error(c, PQresultErrorMessage(c->result));
        PQclear(c->result);
        c->result = NULL;
        finish(c, bad);
        return;
    }
    finish(c, 0);
}

static void collect(pg_conn *c)
{
    while (!PQisBusy(c->pq)) {
        PGresult *r = PQgetResult(c->pq);
        if (!r) return step_over(c);
        ExecStatusType st = PQresultStatus(r);
        keep_result(c, r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            return step_failed(c, "COPY is not supported by lubeck.pg");
    }
}

static void step_io(pg_conn *c, int revents)
{
    if (revents & EV_WRITE) {
        int f = PQflush(c->pq);
        if (f < 0) return step_failed(c, PQerrorMessage(c->pq));
        if (f == 0) arm(c, EV_READ);
    }
    if (revents & EV_READ) {
        if (!PQconsumeInput(c->pq)) return step_failed(c, PQerrorMessage(c->pq));
        collect(c);
    }
}

int pg_conn_wait(pg_conn *c, pg_done_fn done, void *ud)
{
    int f = PQflush(c->pq);
    if (f < 0) {
        c->broken = 1;
        set_error(c, PQerrorMessage(c->pq));
        return -1;
    }
    c->done = done;
    c->ud = ud;
    c->state = ST_BUSY;
    arm(c, f ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}

/* ---- connecting ---------------------------------------------------------- */

/* Timestamps come out as ISO text in UTC whatever the server's defaults, so
 * the values the binding converts have one shape. A DSN that sets its own
 * options gets them put back by one SET after connecting. */
static void connected(pg_conn *c)
{
    PQsetnonblocking(c->pq, 1);
    const char *ds = PQparameterStatus(c->pq, "DateStyle");
    const char *tz = PQparameterStatus(c->pq, "TimeZone");
    if (ds && strncmp(ds, "ISO", 3) == 0 && tz && strcmp(tz, "UTC") == 0) return finish(c, 0);
    if (!PQsendQuery(c->pq, "SET DateStyle = ISO, YMD; SET TimeZone = 'UTC'")) {
        set_error(c, PQerrorMessage(c->pq));
        return finish(c, 1);
    }
    c->setup = 1;
    if (pg_conn_wait(c, c->done, c->ud) != 0) finish(c, 1);
}

static void poll_connect(pg_conn *c, PostgresPollingStatusType st)
{
    switch (st) {
    case PGRES_POLLING_READING: arm(c, EV_READ); return;
    case PGRES_POLLING_WRITING: arm(c, EV_WRITE); return;
    case PGRES_POLLING_OK: connected(c); return;
    default:
        set_error(c, PQerrorMessage(c->pq));
        finish(c, 1);
    }
}

pg_conn *pg_conn_connect(lbk_pg *pg, const char *dsn, pg_done_fn done, void *ud, char *err, size_t errlen)
{
    static const char *const keys[] = { "client_encoding", "options", "dbname", NULL };
    const char *values[] = { "UTF8", "-c DateStyle=ISO,YMD -c TimeZone=UTC", dsn, NULL };
    pg_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->key = strdup(dsn))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->pg = pg;
    ev_init(&c->io, io_cb);
    c->io.data = c;
    /* expand_dbname: the DSN's own settings win over the defaults before it */
    c->pq = PQconnectStartParams(keys, values, 1);
    if (!c->pq || PQstatus(c->pq) == CONNECTION_BAD) {
        set_error(c, c->pq ? PQerrorMessage(c->pq) : "out of memory");
        snprintf(err, errlen, "%s", c->err);
        pg_conn_close(c);
        return NULL;
    }
    c->state = ST_CONNECTING;
    c->done = done;
    c->ud = ud;
    poll_connect(c, PGRES_POLLING_WRITING);   /* libpq's documented first wait */
    return c;
}

/* ---- watching an idle connection ------------------------------------------- */

void pg_conn_watch(pg_conn *c, pg_input_fn fn, void *ud)
{
    c->input = fn;
    c->ud = ud;
    c->state = ST_WATCH;
    arm(c, EV_READ);
}

void pg_conn_unwatch(pg_conn *c)
{
    ev_io_stop(c->pg->loop, &c->io);
    c->input = NULL;
    c->state = ST_IDLE;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    pg_conn *c = w->data;
    switch (c->state) {
    case ST_CONNECTING:
        poll_connect(c, PQconnectPoll(c->pq));
        return;
    case ST_BUSY:
        step_io(c, revents);
        return;
    case ST_WATCH: {
        int ok = PQconsumeInput(c->pq) && PQstatus(c->pq) == CONNECTION_OK;
        if (!ok) c->broken = 1;
        c->input(c, ok, c->ud);   /* may free c */
        return;
    }
    default:
        ev_io_stop(loop, w);
    }
}

/* ---- accessors --------------------------------------------------------------- */

PGconn *pg_conn_pq(pg_conn *c) { return c->pq; }
const char *pg_conn_key(pg_conn *c) { return c->key; }
const char *pg_conn_error(pg_conn *c) { return c->err; }
int pg_conn_reused(pg_conn *c) { return c->reused; }

PGresult *pg_conn_take_result(pg_conn *c)
{
    PGresult *r = c->result;
    c->result = NULL;
    return r;
}

const char *pg_conn_dirty(pg_conn *c)
{
    if (c->state != ST_IDLE && c->state != ST_WATCH) return "busy";
    if (c->broken || PQstatus(c->pq) != CONNECTION_OK) return "connection broken";
    if (c->result) return "unread results";
    switch (PQtransactionStatus(c->pq)) {
    case PQTRANS_IDLE: return NULL;
    case PQTRANS_INTRANS: return "in a transaction";
    case PQTRANS_INERROR: return "in a failed transaction";
    case PQTRANS_ACTIVE: return "busy";
    default: return "connection broken";
    }
}

/* ---- ending ----------------------------------------------------------------- */

/* A cancel that fails leaves the query to run out on the server; its
 * connection is closed anyway, so nothing of it reaches a caller. (No log
 * line from here: the log is the loop thread's.) */
static void *cancel_thread(void *arg)
{
    PGcancel *k = arg;
    char err[256];
    PQcancel(k, err, sizeof err);
    PQfreeCancel(k);
    return NULL;
}

/* PQcancel opens a connection of its own and waits for the server to take
 * the request: it runs on a detached thread that owns the PGcancel. */
static void cancel_running(pg_conn *c)
{
    PGcancel *k = PQgetCancel(c->pq);
    if (!k) return;
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, cancel_thread, k) != 0) cancel_thread(k);
    pthread_attr_destroy(&attr);
}

void pg_conn_abort(pg_conn *c)
{
    if (c->state == ST_BUSY && PQtransactionStatus(c->pq) == PQTRANS_ACTIVE) cancel_running(c);
    pg_conn_close(c);
}

static void pool_unlink(pg_conn *c)
{
    if (!c->pooled) return;
    for (pg_conn **pp = &c->pg->pool; *pp; pp = &(*pp)->pool_next)
        if (*pp == c) { *pp = c->pool_next; break; }
    c->pooled = 0;
    c->pool_next = NULL;
    ev_timer_stop(c->pg->loop, &c->idle);
}

void pg_conn_close(pg_conn *c)
{
    if (!c) return;
    pool_unlink(c);
    ev_io_stop(c->pg->loop, &c->io);
    PQclear(c->result);
    while (c->stmts) pg_stmt_forget(c, c->stmts);
    if (c->unnamed) pg_stmt_forget(c, c->unnamed);
    if (c->pq) PQfinish(c->pq);
    free(c->key);
    free(c);
}

/* ---- the pool ------------------------------------------------------------------ */

static void pooled_input(pg_conn *c, int ok, void *ud)
{
    PGnotify *n;
    while (ok && (n = PQnotifies(c->pq))) PQfreemem(n);   /* a LISTEN left behind */
    if (!ok || PQisBusy(c->pq)) pg_conn_close(c);          /* the server went away */
}

static void pooled_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    pg_conn_close(w->data);
}

pg_conn *pg_pool_take(lbk_pg *pg, const char *dsn)
{
    for (pg_conn *c = pg->pool; c; c = c->pool_next) {
        if (strcmp(c->key, dsn) != 0 || PQstatus(c->pq) != CONNECTION_OK) continue;
        pool_unlink(c);
        pg_conn_unwatch(c);
        c->reused++;
        return c;
    }
    return NULL;
}

int pg_pool_put(pg_conn *c, double idle, int size, const char **why)
{
    lbk_pg *pg = c->pg;
    *why = pg_conn_dirty(c);
    if (*why || size < 1) {
        pg_conn_close(c);
        return *why ? -1 : 0;
    }
    int count = 0;
    pg_conn *oldest = NULL;
    for (pg_conn *p = pg->pool; p; p = p->pool_next)
        if (strcmp(p->key, c->key) == 0) { count++; oldest = p; }
    if (count >= size && oldest) pg_conn_close(oldest);   /* the list is newest first */
    c->pooled = 1;
    c->pool_next = pg->pool;
    pg->pool = c;
    pg_conn_watch(c, pooled_input, NULL);
    ev_timer_init(&c->idle, pooled_idle_cb, idle, 0);
    c->idle.data = c;
    if (idle > 0) ev_timer_start(c->pg->loop, &c->idle);
    return 0;
}

int pg_pool_count(const lbk_pg *pg)
{
    int n = 0;
    for (const pg_conn *c = pg->pool; c; c = c->pool_next) n++;
    return n;
}

/* ---- prepared statements ---------------------------------------------------------- */

pg_stmt *pg_stmt_find(pg_conn *c, const char *sql)
{
    for (pg_stmt *s = c->stmts; s; s = s->next)
        if (strcmp(s->sql, sql) == 0) return s;
    return NULL;
}

pg_stmt *pg_stmt_add(pg_conn *c, const char *sql)
{
    size_t len = strlen(sql);
    pg_stmt *s = calloc(1, sizeof *s + len + 1);
    if (!s) return NULL;
    memcpy(s->sql, sql, len + 1);
    if (c->nstmts >= STMT_CACHE) {   /* full: the unnamed statement, prepared each time */
        if (c->unnamed) pg_stmt_forget(c, c->unnamed);
        c->unnamed = s;
        return s;
    }
    snprintf(s->name, sizeof s->name, "lubeck_%u", ++c->stmt_serial);
    s->next = c->stmts;
    c->stmts = s;
    c->nstmts++;
    return s;
}

void pg_stmt_forget(pg_conn *c, pg_stmt *s)
{
    if (s == c->unnamed) {
        c->unnamed = NULL;
    } else {
        for (pg_stmt **pp = &c->stmts; *pp; pp = &(*pp)->next)
            if (*pp == s) { *pp = s->next; c->nstmts--; break; }
    }
    free(s->types);
    free(s);
}

void pg_free(lbk_pg *pg)
{
    if (!pg) return;
    while (pg->pool) pg_conn_close(pg->pool);
    pg_listeners_free(pg);
    free(pg);
}
