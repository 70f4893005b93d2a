/* --reload (watch.c): calls changed(ud) after the files an app loads change. */
#ifndef LUBECK_WATCH_H
#define LUBECK_WATCH_H

#include <ev.h>

typedef struct app_watch app_watch;

/* Watches dir on loop; NULL when it cannot (inotify's reason goes to stderr). */
app_watch *watch_start(struct ev_loop *loop, const char *dir, void (*changed)(void *ud), void *ud);
void watch_stop(app_watch *w);   /* w may be NULL */

#endif
