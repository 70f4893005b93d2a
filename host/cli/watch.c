/* --reload: inotify on the app folder and its subfolders, reacting only to what
 * the app loads: Lua modules (*.lua anywhere, as the app folder is on
 * package.path) and files under templates/. What an app writes (uploads, data
 * files, logs) reloads nothing, and static/ (served by Mongrel2), dot-folders
 * such as .lubeck/ and editors' temporary files are not watched. Bursts of
 * changes (an editor writing a file in steps, a checkout touching many) become
 * one call, after a short quiet time. */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define QUIET_TIME 0.05
#define EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB)

#define MAX_DIRS 4096

struct app_watch {
    struct ev_loop *loop;
    int fd;
    char root[4096];
    int template_wds[MAX_DIRS];  /* watch descriptors of templates/ and its subfolders */
    int ntemplate;
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

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

/* Folders the app never loads from: Mongrel2 serves static/ itself. */
static int skipped_dir(const app_watch *w, const char *dir)
{
    return !strncmp(dir, w->root, strlen(w->root)) && !strcmp(dir + strlen(w->root), "/static");
}

static int in_templates(const app_watch *w, const char *dir)
{
    size_t n = strlen(w->root);
    return !strncmp(dir, w->root, n) && !strncmp(dir + n, "/templates", 10) &&
           (dir[n + 10] == 0 || dir[n + 10] == '/');
}

static int is_template_wd(const app_watch *w, int wd)
{
    for (int i = 0; i < w->ntemplate; i++)
        if (w->template_wds[i] == wd) return 1;
    return 0;
}

static void add_tree(app_watch *w, const char *dir)
{
    if (skipped_dir(w, dir)) return;
    int wd = inotify_add_watch(w->fd, dir, EVENTS);
    if (wd < 0) return;
    if (in_templates(w, dir) && !is_template_wd(w, wd) && w->ntemplate < MAX_DIRS)
        w->template_wds[w->ntemplate++] = wd;
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
    int relevant = 0, new_dir = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (!e->len || ignored(e->name)) continue;
            if (e->mask & IN_ISDIR) {
                new_dir |= (e->mask & (IN_CREATE | IN_MOVED_TO)) != 0;
                continue;
            }
            if (ends_with(e->name, ".lua") || is_template_wd(w, e->wd)) relevant = 1;
        }
    }
    /* New folders may hold modules later: watching a folder twice is harmless. */
    if (new_dir) add_tree(w, w->root);
    if (!relevant) return;
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
    if (!realpath(dir, w->root)) snprintf(w->root, sizeof w->root, "%s", dir);
    add_tree(w, w->root);
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
