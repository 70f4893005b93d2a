/* The C under lubeck.ngx (lua/lubeck/ngx.lua): what OpenResty's libraries
 * call on ngx that Lua alone cannot do well. Each adds its functions to the
 * table on top (core.re, core.ngx). */
#ifndef LUBECK_NGX_LIB_H
#define LUBECK_NGX_LIB_H

#include "host.h"

void ngx_re_open(lua_State *L, lbk_gen *g);     /* ngx_re.c: exec, names on PCRE2 */
void ngx_util_open(lua_State *L, lbk_gen *g);   /* ngx_util.c: digests, base64, crc32, phase */

#endif
