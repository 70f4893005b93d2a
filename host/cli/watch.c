/* --reload: inotify on the app folder and its subfolders (dot-folders such as
 * .lubeck/ and editors' temporary files left out). Bursts of changes (an editor
 * writing a file in steps, a checkout touching many) become one call, after a
 * short quiet time. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define QUIET_TIME 0.05
#define EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB)

struct app_watch {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer quiet;
    void (*changed)(void *ud);
    void *ud;
};

static int ignored(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n && name[n - 1] == '~') ||
           (n > 4 && (!strcmp(name + n - 4, ".swp") || !strcmp(name + n - 4, ".swx")));
}

static void add_tree(app_watch *w, const char *dir)
{
    if (inotify_add_watch(w->fd, dir, EVENTS) < 0) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (ignored(e->d_name) || e->d_type != DT_DIR) continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        add_tree(w, sub);
    }
    closedir(d);
}

static void quiet_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    app_watch *w = t->data;
    w->changed(w->ud);
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    app_watch *w = io->data;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (e->len && ignored(e->name)) continue;
            relevant = 1;
        }
    }
    if (!relevant) return;
    /* New folders may have appeared: watching a folder twice is harmless. */
    ev_timer_stop(loop, &w->quiet);
    ev_timer_set(&w->quiet, QUIET_TIME, 0);
    ev_timer_start(loop, &w->quiet);
}

app_watch *watch_start(struct ev_loop *loop, const char *dir, void (*changed)(void *), void *ud)
{
    app_watch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        fprintf(stderr, "lubeck: --reload: inotify: %s\n", strerror(errno));
        free(w);
        return NULL;
    }
    w->loop = loop;
    w->changed = changed;
    w->ud = ud;
    add_tree(w, dir);
    ev_io_init(&w->io, io_cb, w->fd, EV_READ);
    w->io.data = w;
    ev_init(&w->quiet, quiet_cb);
    w->quiet.data = w;
    ev_io_start(loop, &w->io);
    return w;
}

void watch_stop(app_watch *w)
{
    if (!w) return;
    ev_io_stop(w->loop, &w->io);
    ev_timer_stop(w->loop, &w->quiet);
    close(w->fd);
    free(w);
}
