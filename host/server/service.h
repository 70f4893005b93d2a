/* The services a host runs beside its requests (channels, sockets, WebSockets,
 * Postgres, ...), each behind the same three calls so that the server walks one
 * list instead of naming each one. A new service adds its entry to the list in
 * services.c; host.c does not change. */
#ifndef LUBECK_SERVICE_H
#define LUBECK_SERVICE_H

#include "host.h"

typedef struct lbk_service {
    const char *name;
    /* r ends (its last coroutine returned): let go of what it holds. */
    void (*req_ended)(lubeck *h, lbk_req *r);
    /* lubeck_stop: wake waiters with "closing", begin closing what is open. */
    void (*stop)(lubeck *h);
    /* lubeck_free: release everything (no request runs any more). */
    void (*free)(lubeck *h);
} lbk_service;

/* Every service, in the order they are called; NULL-terminated (services.c). */
extern const lbk_service *const host_services[];

void services_req_ended(lubeck *h, lbk_req *r);
void services_stop(lubeck *h);
void services_free(lubeck *h);

/* Registers what the server does with each kind of bus message (bus_on);
 * once per process. */
void services_bus_kinds(void);

#endif
