/* The keep-alive pool of cosockets: idle connections by pool key, newest
 * first, each dropped when its idle time is up, its peer closes it or sends
 * anything. A connection is looked at again when it is handed out, since the
 * loop may not have seen the peer's close yet. */
#include "cosocket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct lbk_pooled {
    struct lbk_pooled *next;
    lubeck *h;
    int fd;
    int reused;
    void *tls;                   /* its TLS session state, or NULL */
    void (*free_tls)(void *);
    char key[COSOCKET_POOL_KEY_MAX];
    ev_io io;                    /* the peer closing an idle connection */
    ev_timer idle;
} lbk_pooled;

static void pooled_free(lbk_pooled *p)
{
    lubeck *h = p->h;
    for (lbk_pooled **pp = &h->pool; *pp; pp = &(*pp)->next)
        if (*pp == p) { *pp = p->next; break; }
    ev_io_stop(h->loop, &p->io);
    ev_timer_stop(h->loop, &p->idle);
    free(p);
}

static void pooled_drop(lbk_pooled *p)
{
    if (p->tls) p->free_tls(p->tls);
    close(p->fd);
    pooled_free(p);
}

static void pooled_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    pooled_drop(w->data);   /* EOF or unexpected bytes: no longer reusable */
}

static void pooled_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    pooled_drop(w->data);
}

int cosocket_fd_state(int fd)
{
    char c;
    for (;;) {
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return COSOCKET_DIRTY;
        if (n == 0) return COSOCKET_PEER_CLOSED;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? COSOCKET_CLEAN : COSOCKET_PEER_CLOSED;
    }
}

int cosocket_pool_take(lubeck *h, const char *key, int *reused, void **tls)
{
    lbk_pooled *p = h->pool;
    while (p) {
        lbk_pooled *next = p->next;
        if (strcmp(p->key, key) == 0) {
            if (cosocket_fd_state(p->fd) != COSOCKET_CLEAN) {
                pooled_drop(p);   /* gone or dirty since it was pooled */
            } else {
                int fd = p->fd;
                *reused = p->reused + 1;
                *tls = p->tls;
                pooled_free(p);
                return fd;
            }
        }
        p = next;
    }
    return -1;
}

int cosocket_pool_put(lubeck *h, const char *key, int fd, int reused, void *tls,
                      void (*free_tls)(void *), double idle, int size)
{
    int count = 0;
    lbk_pooled *oldest = NULL;
    for (lbk_pooled *p = h->pool; p; p = p->next)
        if (strcmp(p->key, key) == 0) { count++; oldest = p; }
    if (count >= size && oldest) pooled_drop(oldest);   /* the list is newest first */
    lbk_pooled *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->h = h;
    p->fd = fd;
    p->reused = reused;
    p->tls = tls;
    p->free_tls = free_tls;
    snprintf(p->key, sizeof p->key, "%s", key);
    ev_io_init(&p->io, pooled_io_cb, fd, EV_READ);
    p->io.data = p;
    ev_io_start(h->loop, &p->io);
    ev_timer_init(&p->idle, pooled_idle_cb, idle, 0);
    p->idle.data = p;
    if (idle > 0) ev_timer_start(h->loop, &p->idle);
    p->next = h->pool;
    h->pool = p;
    return 0;
}

/* ---- limits per pool (backlog) ------------------------------------------- */

struct lbk_pool_group {
    lbk_pool_group *next;
    int in_use;                  /* connections holding a slot */
    int waiting;
    lbk_queued *head, *tail;     /* connects waiting for a slot, oldest first */
    char key[COSOCKET_POOL_KEY_MAX];
};

lbk_pool_group *cosocket_group(lubeck *h, const char *key)
{
    for (lbk_pool_group *g = h->pool_groups; g; g = g->next)
        if (strcmp(g->key, key) == 0) return g;
    lbk_pool_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    snprintf(g->key, sizeof g->key, "%s", key);
    g->next = h->pool_groups;
    h->pool_groups = g;
    return g;
}

int cosocket_group_enter(lbk_pool_group *g, int size, int backlog, lbk_queued *q)
{
    if (g->in_use < size && !g->head) {
        g->in_use++;
        return 1;
    }
    if (g->waiting >= backlog) return -1;
    q->group = g;
    q->next = NULL;
    q->prev = g->tail;
    if (g->tail) g->tail->next = q; else g->head = q;
    g->tail = q;
    g->waiting++;
    return 0;
}

void cosocket_group_dequeue(lbk_queued *q)
{
    lbk_pool_group *g = q->group;
    if (!g) return;
    if (q->prev) q->prev->next = q->next; else g->head = q->next;
    if (q->next) q->next->prev = q->prev; else g->tail = q->prev;
    q->prev = q->next = NULL;
    q->group = NULL;
    g->waiting--;
}

void cosocket_group_leave(lbk_pool_group *g)
{
    g->in_use--;
    lbk_queued *q = g->head;
    if (!q) return;
    cosocket_group_dequeue(q);
    g->in_use++;   /* the slot passes straight to the next in line */
    q->go(q, g);
}

void cosocket_pool_free(lubeck *h)
{
    while (h->pool) pooled_drop(h->pool);
    while (h->pool_groups) {
        lbk_pool_group *g = h->pool_groups;
        h->pool_groups = g->next;
        free(g);
    }
}
