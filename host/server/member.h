/* A host's side of a reader (reader.h): instead of pulling from Mongrel2, the
 * host connects a DEALER to each reader (its master's, or `lubeck relay`s),
 * says it is ready once its replies can reach Mongrel2 (its reply socket has
 * seen the front's subscription), takes the messages it is handed, reports
 * each done (batched, a millisecond at most) and, when it stops, says it is
 * leaving and waits for the reader's bye before letting go. */
#ifndef LUBECK_MEMBER_H
#define LUBECK_MEMBER_H

#include "host.h"

/* Before lubeck_start: take requests from these readers (';'-separated). relay:
 * they are `lubeck relay`s, which name Mongrel2's recv specs in their welcome;
 * otherwise the host's own recv_spec is used. 0 or -1. */
int member_configure(lubeck *h, const char *reader_specs, int relay);
/* lubeck_start: connect and start watching. 0 or -1 (h->err set). */
int member_start(lubeck *h);
/* The message handed on link with tag has ended (host_req_free); closed: this
 * host closed its client's connection (the reader forgets the connection). */
void member_done(lubeck *h, int link, uint64_t tag, int closed);
/* lubeck_stop: tell the readers, keep receiving until each says bye. */
void member_leave(lubeck *h);
/* 1 once no reader will hand this host anything more (after member_leave). */
int member_settled(const lubeck *h);
void member_free(lubeck *h);

#endif
