/* What a request holds (host.h, lbk_held): a list the layer above fills, so
 * that the server can let go of it when the request ends without knowing
 * what it is. */
#include "host.h"

void host_req_hold(lbk_req *r, lbk_held *held)
{
    if (held->req == r) return;
    host_req_unhold(held);
    held->req = r;
    held->prev = NULL;
    held->next = r->held;
    if (r->held) r->held->prev = held;
    r->held = held;
}

void host_req_unhold(lbk_held *held)
{
    lbk_req *r = held->req;
    if (!r) return;
    if (held->prev) held->prev->next = held->next; else r->held = held->next;
    if (held->next) held->next->prev = held->prev;
    held->req = NULL;
    held->prev = held->next = NULL;
}

void host_req_release_held(lbk_req *r)
{
    while (r->held) {
        lbk_held *held = r->held;
        held->release(held);
        host_req_unhold(held);   /* in case release left it linked */
    }
}
