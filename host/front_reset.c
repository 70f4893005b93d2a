/* host_front_reset, minimal version for the readers (member.c).
 *
 * MERGE NOTE: the `edges` branch adds the full host_front_reset to host.c
 * (same name and signature); when both are merged, delete this file and keep
 * theirs. This one only cancels the parked requests and WebSocket sessions of
 * that sender, as a disconnect notice would: their later writes are dropped. */
#include "member.h"

#include <string.h>

void host_front_reset(lubeck *h, slice sender)
{
    for (uint32_t i = 0; i < h->nreqs; i++) {
        lbk_req *r = h->reqs[i];
        if (!r->live || !r->parked || r->m2.sender.n != sender.n ||
            memcmp(r->m2.sender.p, sender.p, sender.n) != 0)
            continue;
        host_cancel_conn(h, sender, r->m2.conn_id);
    }
}
