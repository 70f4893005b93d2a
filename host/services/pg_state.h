/* What pg.c and pg_listen.c share of a host's lbk_pg; no one else reads it. */
#ifndef LUBECK_PG_STATE_H
#define LUBECK_PG_STATE_H

#include "pg.h"

struct lbk_pg {
    struct ev_loop *loop;
    pg_conn *pool;               /* idle connections, newest first */
    struct pg_listener *listeners;
    pg_notify_fn notify;         /* where the listeners' NOTIFYs go */
    void *notify_ud;
};

/* pg_listen.c: closes every listener (pg_free). */
void pg_listeners_free(lbk_pg *pg);

#endif
