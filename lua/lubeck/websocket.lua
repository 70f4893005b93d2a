-- WebSocket handlers: a class whose instance lives as long as the connection.
--
--   local Echo = lubeck.WebSocketHandler:extend()
--   function Echo:on_open() end
--   function Echo:on_message(data, kind) self:send(data, kind) end
--   function Echo:on_close(code, reason) end
--   app:route("/echo", Echo)
--
-- The handshake request's coroutine becomes the connection's session: it runs
-- prepare, answers 101, calls on_open, then on_message for each message in
-- order (the next one waits until the previous returned), and on_close once.
-- Each of these may wait (lubeck.sleep, sockets, channels); lubeck.spawn
-- starts threads beside the session, which end with it. The host (C) builds
-- the frames, answers pings, echoes closes and paces sends (host/server/websocket.c).
local core = require "lubeck.core"
local handler = require "lubeck.handler"
local errors = require "lubeck.errors"
local cjson = require("cjson").new()

local type, xpcall, tostring, error, ipairs, gmatch = type, xpcall, tostring, error, ipairs, string.gmatch
local ws_accept, ws_receive, ws_send, ws_close, ws_release, ws_frame =
    core.ws.accept, core.ws.receive, core.ws.send, core.ws.close, core.ws.release, core.ws.frame

local _M = { _VERSION = core.version }

local OPCODES = { text = 1, binary = 2 }

local WebSocketHandler = handler.Handler:extend()
WebSocketHandler._websocket = true

-- The subprotocols this class speaks, in the order it prefers them, e.g.
-- { "chat.v2", "chat.v1" }; or override select_subprotocol(offered).
WebSocketHandler.subprotocols = nil

function WebSocketHandler:on_open() end
function WebSocketHandler:on_message(data, kind) end
function WebSocketHandler:on_close(code, reason) end

-- A plain GET to a WebSocket route (a class may define its own get).
function WebSocketHandler:get()
    self:set_header("Upgrade", "websocket")
    self:set_header("Sec-WebSocket-Version", "13")
    return 426, "Upgrade Required: this is a WebSocket endpoint\n"
end

-- offered: the client's Sec-WebSocket-Protocol list. Returns the one to answer
-- with, or nil for none (the client then decides whether to go on).
function WebSocketHandler:select_subprotocol(offered)
    local mine = self.subprotocols
    if type(mine) ~= "table" then return nil end
    for _, want in ipairs(mine) do
        for _, p in ipairs(offered) do
            if p == want then return p end
        end
    end
end

-- send(data [, "text" | "binary"]): a string, or a table sent as JSON text.
-- Returns true once the frame left, or nil, "closed". It may wait: each
-- connection takes a few frames per couple of milliseconds (see the host).
function WebSocketHandler:send(data, kind)
    local op = OPCODES[kind or "text"]
    if not op then error("send: kind must be \"text\" or \"binary\", got " .. tostring(kind), 2) end
    local t = type(data)
    if t == "table" then
        data = cjson.encode(data)
    elseif t == "number" then
        data = tostring(data)
    elseif t ~= "string" then
        error("send: data must be a string or a table, got " .. t, 2)
    end
    return ws_send(self.req._handle, data, op)
end

function WebSocketHandler:ping(data)
    data = data or ""
    if type(data) ~= "string" or #data > 125 then error("ping: data is a string of at most 125 bytes", 2) end
    return ws_send(self.req._handle, data, 9)
end

-- close([code=1000 [, reason]]): sends the close frame; on_close runs once the
-- client answered (or after 2 s without an answer).
function WebSocketHandler:close(code, reason)
    local ok, err = ws_close(self.req._handle, code, reason)   -- raises on a bad code
    self._ws_closing = true
    return ok, err
end

-- subscribe(channel, fn): a thread that calls fn(self, value) for each value
-- published on channel (a lubeck.channel or its name) until the connection
-- ends. Returns the thread.
function WebSocketHandler:subscribe(ch, fn)
    if type(ch) == "string" then ch = require("lubeck.channel").new(ch) end
    if type(ch) ~= "table" or type(ch.wait) ~= "function" then
        error("subscribe: channel must be a lubeck.channel or a name", 2)
    end
    if type(fn) ~= "function" then error("subscribe: fn must be a function", 2) end
    return core.spawn(function()
        while not self.closed do
            local value, err = ch:wait()
            if err then return end                     -- "closed": the connection ended
            if not self.closed then fn(self, value) end
        end
    end)
end

-- Frames for app:deliver (one frame to many connections in a single message):
--   app:deliver(sender, conn_ids, lubeck.websocket.frame("hi"))
function _M.frame(data, kind)
    local op = OPCODES[kind or "text"]
    if not op or type(data) ~= "string" then error("frame(data [, kind]): bad arguments", 2) end
    return ws_frame(data, op)
end

local on_error = errors.traceback

local function log_failure(req, where, err)
    core.log("error", ("WEBSOCKET %s: %s%s"):format(req.path, where, tostring(err)))
end

local function offered_protocols(req)
    local list = {}
    local header = req:header("sec-websocket-protocol")
    if header then
        for p in gmatch(header, "[^%s,]+") do list[#list + 1] = p end
    end
    return list
end

-- prepare may refuse the connection (finish, redirect, abort): then it is an
-- ordinary HTTP response and no session starts.
local function handshake(inst, req)
    if type(inst.prepare) == "function" then
        inst:prepare()
        if inst._finished then return false end
    end
    local protocol = inst:select_subprotocol(offered_protocols(req))
    if protocol ~= nil and type(protocol) ~= "string" then
        error("select_subprotocol must return a string or nil", 0)
    end
    local ok, err = ws_accept(req._handle, protocol)
    if not ok then error("cannot accept the WebSocket: " .. err, 0) end
    inst.protocol = protocol
    inst._finished = true
    return true
end

-- Runs a callback; a failure is logged and closes the connection with 1011.
local function call(inst, req, name, ...)
    local ok, err = xpcall(inst[name], on_error, inst, ...)
    if not ok then
        log_failure(req, "in " .. name .. ": ", errors.is_abort(err) and "lubeck.abort" or err)
        if not inst._ws_closing then inst:close(1011, "internal error") end
    end
end

-- The session: what the handshake request's coroutine runs (pipeline.lua).
function _M.session(inst, req, ...)
    local handle = req._handle
    local ok, accepted = xpcall(handshake, on_error, inst, req)
    if not ok then
        if errors.is_abort(accepted) then return inst:send_abort(accepted) end
        log_failure(req, "", accepted)
        return inst:send_error(500)
    end
    if not accepted then return end
    call(inst, req, "on_open", ...)
    local code, reason
    while true do
        local kind, a, b = ws_receive(handle)
        if kind == "text" or kind == "binary" then
            if not inst._ws_closing then call(inst, req, "on_message", a, kind) end
        elseif kind == "close" then
            code, reason = a, b
            break
        else                                           -- nil, "closed": the client vanished
            code, reason = 1006, ""
            break
        end
    end
    inst.closed = true
    ok, accepted = xpcall(inst.on_close, on_error, inst, code, reason)
    if not ok then log_failure(req, "in on_close: ", accepted) end
    ws_release(handle)                                 -- wakes the threads it left waiting
end

_M.WebSocketHandler = WebSocketHandler

return _M
