/* lubeck relay (relay.c): a reader beside a Mongrel2 for hosts that join it. */
#ifndef LUBECK_RELAY_H
#define LUBECK_RELAY_H

#include "cli.h"

/* lubeck relay --send SPEC --recv SPEC --listen SPEC. */
int relay_main(const cli_options *o);

#endif
