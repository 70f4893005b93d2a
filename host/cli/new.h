/* lubeck new NAME (new.c): a new app folder. */
#ifndef LUBECK_NEW_H
#define LUBECK_NEW_H

#include "cli.h"

int new_main(cli_options *o);

#endif
