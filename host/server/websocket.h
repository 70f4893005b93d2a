/* WebSockets through Mongrel2 (docs/protocol.md, WebSockets): Mongrel2 parses the client's
 * frames and hands each whole message over with METHOD WEBSOCKET; the host
 * answers the handshake, builds every server frame, answers pings, echoes
 * closes, and keeps one session per connection: the handshake request's
 * coroutine, which lives as long as the connection (lua/lubeck/websocket.lua). */
#ifndef LUBECK_WEBSOCKET_H
#define LUBECK_WEBSOCKET_H

#include <stdint.h>

#include "host.h"

enum {
    WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA,
};
#define WS_MAX_HEADER 10

/* Writes the header of one unmasked, final server frame (2, 4 or 10 bytes: the
 * 7-, 16- or 64-bit length form); returns its size. */
size_t websocket_frame_header(unsigned char out[WS_MAX_HEADER], int opcode, uint64_t len);
/* 1 when s is well-formed UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF), else 0. */
int websocket_utf8_valid(const char *s, size_t n);

/* host.c: a frame with METHOD WEBSOCKET and FLAGS. Returns 0 when m is not one
 * (route it as usual), 1 when it was taken: handed to the connection's session or
 * dropped with a log line (with --workers the master's reader hands every frame
 * of a connection to the worker that owns it). */
int websocket_frame(lubeck *h, const m2_request *m);
/* host.c: the session request ended: forget its connection. */
void websocket_req_ended(lubeck *h, lbk_req *r);
/* park.c: the front the session came through dropped (its Mongrel2 restarted):
 * the connection id may name another client now, so nothing more goes out and
 * the id is free for a new session. */
void websocket_forget(lubeck *h, lbk_req *r);
/* host.c, lubeck_stop: every connection gets a close frame (1001 going away). */
void websocket_stop_all(lubeck *h);
void websocket_free_all(lubeck *h);

/* lua_websocket.c: adds accept, receive, send, ... to the table on top (core.ws). */
void websocket_open(lua_State *L, lbk_gen *g);

#endif
