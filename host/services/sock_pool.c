/* The keep-alive pool of cosockets: idle connections by pool key, newest
 * first, each dropped when its idle time is up, its peer closes it or sends
 * anything. A connection is looked at again when it is handed out, since the
 * loop may not have seen the peer's close yet. */
#include "sock_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct lbk_pooled {
    struct lbk_pooled *next;
    lbk_sock_pool *pool;
    int fd;
    int reused;
    void *tls;                   /* its TLS session state, or NULL */
    void (*free_tls)(void *);
    char key[SOCK_POOL_KEY_MAX];
    ev_io io;                    /* the peer closing an idle connection */
    ev_timer idle;
} lbk_pooled;

struct lbk_sock_pool {
    struct ev_loop *loop;
    lbk_pooled *idle;            /* newest first */
    lbk_pool_group *groups;      /* limits per pool key (backlog) */
};

lbk_sock_pool *sock_pool_new(struct ev_loop *loop)
{
    lbk_sock_pool *p = calloc(1, sizeof *p);
    if (p) p->loop = loop;
    return p;
}

static void pooled_free(lbk_pooled *pc)
{
    lbk_sock_pool *p = pc->pool;
    for (lbk_pooled **pp = &p->idle; *pp; pp = &(*pp)->next)
        if (*pp == pc) { *pp = pc->next; break; }
    ev_io_stop(p->loop, &pc->io);
    ev_timer_stop(p->loop, &pc->idle);
    free(pc);
}

static void pooled_drop(lbk_pooled *pc)
{
    if (pc->tls) pc->free_tls(pc->tls);
    close(pc->fd);
    pooled_free(pc);
}

static void pooled_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    pooled_drop(w->data);   /* EOF or unexpected bytes: no longer reusable */
}

static void pooled_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    pooled_drop(w->data);
}

int sock_fd_state(int fd)
{
    char c;
    for (;;) {
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return SOCK_DIRTY;
        if (n == 0) return SOCK_PEER_CLOSED;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? SOCK_CLEAN : SOCK_PEER_CLOSED;
    }
}

int sock_pool_take(lbk_sock_pool *p, const char *key, int *reused, void **tls)
{
    lbk_pooled *pc = p->idle;
    while (pc) {
        lbk_pooled *next = pc->next;
        if (strcmp(pc->key, key) == 0) {
            if (sock_fd_state(pc->fd) != SOCK_CLEAN) {
                pooled_drop(pc);   /* gone or dirty since it was pooled */
            } else {
                int fd = pc->fd;
                *reused = pc->reused + 1;
                *tls = pc->tls;
                pooled_free(pc);
                return fd;
            }
        }
        pc = next;
    }
    return -1;
}

int sock_pool_put(lbk_sock_pool *p, const char *key, int fd, int reused, void *tls,
                  void (*free_tls)(void *), double idle, int size)
{
    lbk_pooled *pc = calloc(1, sizeof *pc);
    if (!pc) return -1;
    int count = 0;
    lbk_pooled *oldest = NULL;
    for (lbk_pooled *o = p->idle; o; o = o->next)
        if (strcmp(o->key, key) == 0) { count++; oldest = o; }
    if (count >= size && oldest) pooled_drop(oldest);   /* the list is newest first */
    pc->pool = p;
    pc->fd = fd;
    pc->reused = reused;
    pc->tls = tls;
    pc->free_tls = free_tls;
    snprintf(pc->key, sizeof pc->key, "%s", key);
    ev_io_init(&pc->io, pooled_io_cb, fd, EV_READ);
    pc->io.data = pc;
    ev_io_start(p->loop, &pc->io);
    ev_timer_init(&pc->idle, pooled_idle_cb, idle, 0);
    pc->idle.data = pc;
    if (idle > 0) ev_timer_start(p->loop, &pc->idle);
    pc->next = p->idle;
    p->idle = pc;
    return 0;
}

int sock_pool_idle(const lbk_sock_pool *p, const char *key)
{
    int n = 0;
    for (const lbk_pooled *pc = p->idle; pc; pc = pc->next)
        if (strcmp(pc->key, key) == 0) n++;
    return n;
}

/* ---- limits per pool (backlog) ------------------------------------------- */

struct lbk_pool_group {
    lbk_pool_group *next;
    int in_use;                  /* connections holding a slot */
    int waiting;
    lbk_queued *head, *tail;     /* connects waiting for a slot, oldest first */
    char key[SOCK_POOL_KEY_MAX];
};

lbk_pool_group *sock_pool_group(lbk_sock_pool *p, const char *key)
{
    for (lbk_pool_group *g = p->groups; g; g = g->next)
        if (strcmp(g->key, key) == 0) return g;
    lbk_pool_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    snprintf(g->key, sizeof g->key, "%s", key);
    g->next = p->groups;
    p->groups = g;
    return g;
}

int sock_group_enter(lbk_pool_group *g, int size, int backlog, lbk_queued *q)
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

void sock_group_dequeue(lbk_queued *q)
{
    lbk_pool_group *g = q->group;
    if (!g) return;
    if (q->prev) q->prev->next = q->next; else g->head = q->next;
    if (q->next) q->next->prev = q->prev; else g->tail = q->prev;
    q->prev = q->next = NULL;
    q->group = NULL;
    g->waiting--;
}

void sock_group_leave(lbk_pool_group *g)
{
    g->in_use--;
    lbk_queued *q = g->head;
    if (!q) return;
    sock_group_dequeue(q);
    g->in_use++;   /* the slot passes straight to the next in line */
    q->go(q, g);
}

void sock_pool_free(lbk_sock_pool *p)
{
    if (!p) return;
    while (p->idle) pooled_drop(p->idle);
    while (p->groups) {
        lbk_pool_group *g = p->groups;
        p->groups = g->next;
        free(g);
    }
    free(p);
}
