/* The bus between the workers of one host (docs/architecture.md, Workers):
 * channel publishes are passed to every other worker through a forwarder the
 * master runs (ZeroMQ XSUB/XPUB on ipc://). A worker skips what it sent itself.
 * (Disconnect and credits notices and WebSocket frames need no bus: the
 * master's reader hands them to the worker that owns their connection,
 * reader.h.) */
#ifndef LUBECK_BUS_H
#define LUBECK_BUS_H

#include <stddef.h>
#include <ev.h>

#include "slice.h"

typedef struct lbk_bus lbk_bus;

/* What a worker does with a message of one kind from another worker: ud is
 * what its bus was connected with; a and b are the two payload parts, valid
 * during the call. */
typedef void (*bus_fn)(void *ud, slice a, slice b);
/* Registers fn for the messages of kind (the same for every bus of the
 * process; the server registers its kinds once, at its first lubeck_new).
 * A kind with no function is dropped. */
void bus_on(char kind, bus_fn fn);

/* Connects this worker to the master's forwarder through zctx (a ZeroMQ
 * context): PUB to in_spec, SUB to out_spec, read on loop; each message from
 * another worker goes to its kind's function with ud. NULL with why in err. */
lbk_bus *bus_connect(struct ev_loop *loop, void *zctx, const char *in_spec, const char *out_spec,
                     void *ud, char *err, size_t errlen);
void bus_close(lbk_bus *b);
void bus_send_channel(lbk_bus *b, const char *name, size_t name_len, const char *payload, size_t len);

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
