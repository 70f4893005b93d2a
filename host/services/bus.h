/* The bus between the workers of one host (docs/architecture.md, Workers):
 * channel publishes are passed to every other worker through a forwarder the
 * master runs (ZeroMQ XSUB/XPUB on ipc://). A worker skips what it sent itself.
 * (Disconnect and credits notices and WebSocket frames need no bus: the
 * master's reader hands them to the worker that owns their connection,
 * reader.h.) */
#ifndef LUBECK_BUS_H
#define LUBECK_BUS_H

#include "host.h"

/* What a worker does with a message of one kind from another worker: a and b
 * are its two payload parts, valid during the call. */
typedef void (*bus_fn)(lubeck *h, slice a, slice b);
/* Registers fn for the messages of kind (the same for every host of the
 * process; the server registers its kinds once, at its first lubeck_new).
 * A kind with no function is dropped. */
void bus_on(char kind, bus_fn fn);

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

/* The forwarder's own channel traffic, for the bus process's Redis link: fn
 * sees every channel message a worker sends, and send_channel hands one from
 * another host to every worker. */
typedef void (*bus_channel_fn)(void *ud, const char *name, size_t name_len, const char *payload, size_t len);
void bus_forwarder_tap_channels(bus_forwarder *f, bus_channel_fn fn, void *ud);
void bus_forwarder_send_channel(bus_forwarder *f, const char *name, size_t name_len,
                                const char *payload, size_t len);

#endif
