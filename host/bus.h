/* The bus between the workers of one host: channel publishes are passed to
 * every other worker through a forwarder the master runs (ZeroMQ XSUB/XPUB on
 * ipc://). A worker skips what it sent itself. (Disconnect notices and
 * WebSocket frames need no bus: the master's reader hands them to the worker
 * that owns their connection, reader.h.) */
#ifndef LUBECK_BUS_H
#define LUBECK_BUS_H

#include "host.h"

/* Connects this worker to the master's forwarder: PUB to in_spec, SUB to out_spec. */
int bus_connect(lubeck *h, const char *in_spec, const char *out_spec);
void bus_close(lubeck *h);
void bus_send_channel(lubeck *h, const char *name, size_t name_len, const char *payload, size_t len);

/* The master's side: forwards everything from in_spec (bound XSUB) to out_spec
 * (bound XPUB) from inside the caller's loop. */
typedef struct bus_forwarder bus_forwarder;
bus_forwarder *bus_forwarder_start(struct ev_loop *loop, const char *in_spec, const char *out_spec,
                                   char *err, size_t errlen);
void bus_forwarder_stop(bus_forwarder *f);

#endif
