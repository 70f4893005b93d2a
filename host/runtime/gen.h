/* A generation: one Lua state with the app loaded in it, its router, the entry
 * points the server calls, and its pool of coroutines (scheduler.c). Loading
 * one is the Lua layer's job (lua/gen.c, gen_load); the scheduler only counts
 * its tasks and says when a retired one has none left. */
#ifndef LUBECK_GEN_H
#define LUBECK_GEN_H

#include <lua.h>

#include "router.h"

typedef struct lbk_gen lbk_gen;
typedef struct lbk_task lbk_task;
struct lubeck;
struct lbk_sched;

struct lbk_gen {
    struct lubeck *host;         /* the instance it serves (opaque below the server) */
    struct lbk_sched *sched;     /* the scheduler its coroutines run on */
    lua_State *L;
    router *router;
    int entry_ref;               /* pipeline entry (see dispatch in host.c) */
    int timeout_ref;             /* answers a request that timed out: f(handle) */
    double request_timeout;
    int tasks;                   /* coroutines alive in this generation */
    int retired;                 /* no new requests: closed once tasks is 0 */
    lbk_task *free_tasks;        /* the pool (scheduler.c) */
};

#endif
