/* The one list of services (service.h) and the bus kinds the server handles. */
#include "service.h"

#include <pthread.h>

#include "bus.h"
#include "channel.h"
#include "cosocket.h"
#include "flow.h"
#include "pg.h"
#include "shared.h"
#include "websocket.h"

/* ---- each service's three calls --------------------------------------------- */

static void channel_stop(lubeck *h) { channels_wake_all(h->channels, "closing"); }

static void channel_free(lubeck *h)
{
    channels_free(h->channels);   /* and the Redis link */
    h->channels = NULL;
}

static const lbk_service channel_service = {
    .name = "channel", .stop = channel_stop, .free = channel_free };

static void ws_req_ended(lubeck *h, lbk_req *r)
{
    if (r->ws) websocket_req_ended(h, r);
}

static const lbk_service websocket_service = {
    .name = "websocket", .req_ended = ws_req_ended, .stop = websocket_stop_all,
    .free = websocket_free_all };

/* A request's cosockets are among what it holds (host/lua/lua_cosocket.c). */
static void held_req_ended(lubeck *h, lbk_req *r) { host_req_release_held(r); }

static void cosocket_free(lubeck *h)
{
    cosockets_free(h->cosockets);
    h->cosockets = NULL;
}

static const lbk_service cosocket_service = {
    .name = "cosocket", .req_ended = held_req_ended, .free = cosocket_free };

static const lbk_service flow_service = { .name = "flow", .free = flow_free_all };

static void pg_service_free(lubeck *h)
{
    pg_free(h->pg);
    h->pg = NULL;
}

static const lbk_service pg_service = { .name = "pg", .free = pg_service_free };

static void shared_free(lubeck *h)
{
    if (h->own_shared) shared_zone_free(h->shared);
}

static const lbk_service shared_service = { .name = "shared", .free = shared_free };

static void bus_free(lubeck *h)
{
    bus_close(h->bus);
    h->bus = NULL;
}

static const lbk_service bus_service = { .name = "bus", .free = bus_free };

/* stop: channel waiters are told before the WebSocket sessions close (as
 * before); req_ended: a session ends before its sockets close. */
const lbk_service *const host_services[] = {
    &channel_service, &websocket_service, &cosocket_service, &flow_service,
    &pg_service, &shared_service, &bus_service, NULL,
};

void services_req_ended(lubeck *h, lbk_req *r)
{
    for (const lbk_service *const *s = host_services; *s; s++)
        if ((*s)->req_ended) (*s)->req_ended(h, r);
}

void services_stop(lubeck *h)
{
    for (const lbk_service *const *s = host_services; *s; s++)
        if ((*s)->stop) (*s)->stop(h);
}

void services_free(lubeck *h)
{
    for (const lbk_service *const *s = host_services; *s; s++)
        if ((*s)->free) (*s)->free(h);
}

/* ---- the bus's message kinds ------------------------------------------------ */

/* Another worker's publish: this worker's waiters (ud: the host the bus was
 * connected for). */
static void on_channel(void *ud, slice name, slice payload)
{
    lubeck *h = ud;
    channels_deliver(h->channels, name.p, name.n, payload.p, payload.n);
}

static void register_kinds(void)
{
    bus_on('C', on_channel);
}

void services_bus_kinds(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_kinds);
}
