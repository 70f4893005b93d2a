/* lubeck.spawn: light threads. A spawned function runs in its own coroutine,
 * belongs to the spawning request (cancelled with it) and starts at once,
 * running until its first wait. t:wait([timeout]) joins it. */
#ifndef LUBECK_THREAD_H
#define LUBECK_THREAD_H

#include "host.h"

typedef struct lbk_thread lbk_thread;

/* Called by the server's task_ended hook for a task that lubeck.spawn started. */
void thread_ended(lbk_task *t, int failed);
void thread_open(lua_State *L, lbk_gen *g);   /* adds spawn to the table on top */

#endif
