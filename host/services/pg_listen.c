/* pg.listen(dsn, channel): one connection per DSN in each host process runs
 * LISTEN for every channel asked of it and hands each NOTIFY to the pool's
 * notify function (the host's channels: a publish on the lubeck.channel of the
 * same name, in this process only): every worker
 * listens for itself, so a notification reaches each worker exactly once. A
 * lost connection is made again after a pause that doubles up to MAX_BACKOFF;
 * notifications sent while it was down are lost (PostgreSQL keeps none). */
#include "pg_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FIRST_BACKOFF 0.1
#define MAX_BACKOFF 5.0

typedef struct pg_listener {
    struct pg_listener *next;
    lbk_pg *pg;
    char *dsn;
    char **channels;
    int nchannels, cap;
    int listening;               /* channels[0, listening) are LISTENed on c */
    int sent;                    /* ... and up to here once the step in flight ends */
    pg_conn *c;
    int connected;               /* c has finished connecting */
    ev_timer retry;
    double backoff;
} pg_listener;

static void send_listens(pg_listener *l);

static void schedule(pg_listener *l, double after)
{
    ev_timer_stop(l->pg->loop, &l->retry);
    ev_timer_set(&l->retry, after, 0);
    ev_timer_start(l->pg->loop, &l->retry);
}

static void lost(pg_listener *l, const char *why)
{
    log_warn("pg.listen (channel %s): %s; connecting again in %gs", l->channels[0], why, l->backoff);
    pg_conn_close(l->c);
    l->c = NULL;
    l->connected = 0;
    schedule(l, l->backoff);
    l->backoff = l->backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : l->backoff * 2;
}

/* The payload as lubeck.channel carries values: a JSON list of one string. */
static void publish(lbk_pg *pg, const PGnotify *n)
{
    size_t len = strlen(n->extra);
    char stack[512];
    size_t cap = len * 6 + 8;
    char *out = cap <= sizeof stack ? stack : malloc(cap);
    if (!out) return;
    size_t k = 0;
    out[k++] = '[';
    out[k++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)n->extra[i];
        if (ch == '"' || ch == '\\') { out[k++] = '\\'; out[k++] = (char)ch; }
        else if (ch < 0x20) k += (size_t)snprintf(out + k, 7, "\\u%04x", ch);
        else out[k++] = (char)ch;
    }
    out[k++] = '"';
    out[k++] = ']';
    pg->notify(pg->notify_ud, n->relname, strlen(n->relname), out, k);
    if (out != stack) free(out);
}

static void deliver(pg_listener *l)
{
    PGnotify *n;
    while (l->c && (n = PQnotifies(pg_conn_pq(l->c)))) {
        publish(l->pg, n);
        PQfreemem(n);
    }
}

static void on_input(pg_conn *c, int ok, void *ud)
{
    pg_listener *l = ud;
    if (!ok) return lost(l, pg_conn_error(c)[0] ? pg_conn_error(c) : "connection lost");
    deliver(l);
}

static void on_listened(pg_conn *c, int failed, void *ud)
{
    pg_listener *l = ud;
    if (failed) return lost(l, pg_conn_error(c));
    PGresult *res = pg_conn_take_result(c);
    if (res && PQresultStatus(res) == PGRES_FATAL_ERROR) {
        char why[256];
        snprintf(why, sizeof why, "LISTEN failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return lost(l, why);
    }
    PQclear(res);
    l->listening = l->sent;
    l->backoff = FIRST_BACKOFF;
    deliver(l);
    send_listens(l);
}

/* LISTEN for the channels not yet listened to, then watch for notifications. */
static void send_listens(pg_listener *l)
{
    PGconn *pq = pg_conn_pq(l->c);
    pg_conn_unwatch(l->c);
    if (l->listening == l->nchannels) return pg_conn_watch(l->c, on_input, l);
    size_t cap = 1, len = 0;
    char *sql = NULL;
    for (int i = l->listening; i < l->nchannels; i++) {
        char *id = PQescapeIdentifier(pq, l->channels[i], strlen(l->channels[i]));
        if (!id) { free(sql); return lost(l, PQerrorMessage(pq)); }
        size_t need = strlen(id) + 10;
        char *grown = realloc(sql, cap + need);
        if (!grown) { PQfreemem(id); free(sql); return lost(l, "out of memory"); }
        sql = grown;
        cap += need;
        len += (size_t)snprintf(sql + len, cap - len, "LISTEN %s;", id);
        PQfreemem(id);
    }
    int ok = PQsendQuery(pq, sql);
    free(sql);
    if (!ok) return lost(l, PQerrorMessage(pq));
    l->sent = l->nchannels;
    if (pg_conn_wait(l->c, on_listened, l) != 0) lost(l, pg_conn_error(l->c));
}

static void on_connected(pg_conn *c, int failed, void *ud)
{
    pg_listener *l = ud;
    if (failed) return lost(l, pg_conn_error(c));
    l->connected = 1;
    l->listening = l->sent = 0;
    send_listens(l);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    pg_listener *l = w->data;
    char err[256];
    l->c = pg_conn_connect(l->pg, l->dsn, on_connected, l, err, sizeof err);
    if (!l->c) lost(l, err);
}

int pg_listen(lbk_pg *pg, const char *dsn, const char *channel)
{
    pg_listener *l = pg->listeners;
    while (l && strcmp(l->dsn, dsn) != 0) l = l->next;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l || !(l->dsn = strdup(dsn))) { free(l); return -1; }
        l->pg = pg;
        l->backoff = FIRST_BACKOFF;
        ev_timer_init(&l->retry, retry_cb, 0, 0);
        l->retry.data = l;
        l->next = pg->listeners;
        pg->listeners = l;
    }
    for (int i = 0; i < l->nchannels; i++)
        if (strcmp(l->channels[i], channel) == 0) return 0;   /* a reload asks again */
    if (l->nchannels == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        char **grown = realloc(l->channels, sizeof *grown * (size_t)cap);
        if (!grown) return -1;
        l->channels = grown;
        l->cap = cap;
    }
    if (!(l->channels[l->nchannels] = strdup(channel))) return -1;
    l->nchannels++;
    if (!l->c) {
        if (!ev_is_active(&l->retry)) schedule(l, 0);   /* from the loop, not from app load */
    } else if (l->connected && l->sent == l->listening) {
        send_listens(l);   /* idle: listen to the new one now */
    }
    return 0;
}

void pg_listeners_free(lbk_pg *pg)
{
    pg_listener *l = pg->listeners;
    while (l) {
        pg_listener *next = l->next;
        ev_timer_stop(pg->loop, &l->retry);
        pg_conn_close(l->c);
        for (int i = 0; i < l->nchannels; i++) free(l->channels[i]);
        free(l->channels);
        free(l->dsn);
        free(l);
        l = next;
    }
    pg->listeners = NULL;
}
