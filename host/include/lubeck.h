/* lubeck: run Lua web handlers behind Mongrel2, inside your own libev loop.
 *
 *   lubeck_config cfg = { .app = "apps/hello", .send_spec = "tcp://127.0.0.1:9997",
 *                         .recv_spec = "tcp://127.0.0.1:9996" };
 *   char err[256];
 *   lubeck *h = lubeck_new(EV_DEFAULT, &cfg, err, sizeof err);
 *   if (!h || lubeck_start(h) != 0) ...
 *   ev_run(EV_DEFAULT, 0);         // the caller runs the loop, never lubeck
 *   lubeck_stop(h); ... wait until lubeck_inflight(h) == 0 ...; lubeck_free(h);
 *
 * Build with: cc app.c $(pkg-config --cflags --libs lubeck). A complete program:
 * apps/embed/main.c; the details: docs/embedding.md.
 */
#ifndef LUBECK_H
#define LUBECK_H

#include <stddef.h>
#include <lua.h>
#include <ev.h>

#define LUBECK_VERSION_MAJOR 0
#define LUBECK_VERSION_MINOR 1
#define LUBECK_VERSION_PATCH 0
#define LUBECK_VERSION "0.1.0"

#if defined(__GNUC__)
#define LUBECK_API __attribute__((visibility("default")))
#else
#define LUBECK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lubeck lubeck;

typedef struct lubeck_config {
    const char *app;                   /* app folder (holds app.lua) */
    const char *send_spec, *recv_spec; /* one Mongrel2 Handler's specs; for several
                                          servers, separate them with ';' */
    const char *sender_id;             /* this handler's ZeroMQ identity (as Brubeck's
                                          sender_id); NULL: a fresh UUID. Replies name
                                          the Mongrel2 that sent each request. */
    int reload;                        /* unused, kept so the struct's layout does not
                                          change: the library never watches the app
                                          folder (the lubeck CLI's --reload does) */
    int debug;                         /* tracebacks in error pages, verbose logs */
} lubeck_config;

/* Creates a host on the caller's loop. Returns NULL with a message in err. */
LUBECK_API lubeck *lubeck_new(struct ev_loop *loop, const lubeck_config *cfg,
                              char *err, size_t errlen);
/* Makes fn reachable from Lua as require("lubeck.native")[name]. Before start. */
LUBECK_API int lubeck_register(lubeck *h, const char *name, lua_CFunction fn);
/* Connects, loads the app and attaches to the loop. 0, or -1 (see lubeck_error). */
LUBECK_API int lubeck_start(lubeck *h);
/* Starts no more requests; those in flight run to their end. It stays
 * connected (ZeroMQ discards what is queued at a disconnect): what arrives is
 * answered 503 with Retry-After, channel waits wake with nil, "closing".
 * lubeck_free reads the queue empty and lets go. */
LUBECK_API void lubeck_stop(lubeck *h);
/* Requests still running; 0 after lubeck_stop means drained. */
LUBECK_API int lubeck_inflight(const lubeck *h);
/* Answers 503 to what is still queued, closes the sockets, stops every
 * watcher the host started on the loop and frees all it holds; requests still
 * running are abandoned unanswered. Not from inside a handler
 * or a registered function. NULL is a no-op. */
LUBECK_API void lubeck_free(lubeck *h);
/* The last error, or "" when there is none. */
LUBECK_API const char *lubeck_error(const lubeck *h);

#ifdef __cplusplus
}
#endif
#endif
