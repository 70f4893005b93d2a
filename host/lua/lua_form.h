/* lubeck.core.form: query strings, cookies, url_decode and multipart bodies
 * (lua_form.c). */
#ifndef LUBECK_LUA_FORM_H
#define LUBECK_LUA_FORM_H

#include <lua.h>

#include "gen.h"

void form_open(lua_State *L, lbk_gen *g);   /* adds the functions to the table on top */

#endif
