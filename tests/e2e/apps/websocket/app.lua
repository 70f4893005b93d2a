-- WebSocket handlers for tests/e2e/test_websocket.py and tests/bench/ws_bench.py.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "websocket" }

local function pid() return lubeck.stats().pid end   -- which process answered

-- What on_close saw, per worker: GET /closes
local closes = { count = 0 }
local function record_close(self, code, reason)
    closes.count = closes.count + 1
    closes.last = { code = code, reason = reason, path = self.req.path }
end

local Echo = lubeck.WebSocketHandler:extend()
function Echo:on_message(data, kind) self:send(data, kind) end
Echo.on_close = record_close
app:route("/echo", Echo)

-- Per-connection state across frames (and across workers: see --workers 2).
local Counter = lubeck.WebSocketHandler:extend()
function Counter:on_open() self.n = 0 end
function Counter:on_message(data)
    self.n = self.n + 1
    self:send(("%d %s %d"):format(self.n, data, pid()))
end
app:route("/counter", Counter)

-- Handlers may wait: each reply comes after a sleep, still in order.
local Sleepy = lubeck.WebSocketHandler:extend()
function Sleepy:on_message(data)
    lubeck.sleep(0.02)
    self:send("slept " .. data)
end
app:route("/sleepy", Sleepy)

-- A burst of n frames in one go, past Mongrel2's queue of 16 per connection.
local Burst = lubeck.WebSocketHandler:extend()
function Burst:on_message(data)
    for i = 1, tonumber(data) do self:send("m" .. i) end
    self:send("done")
end
app:route("/burst", Burst)

-- "COUNT SIZE": COUNT frames of SIZE bytes each, then "done COUNT"; what send
-- returned, if not true, ends the loop and is recorded (GET /flood-results).
local flood_results = {}
local Flood = lubeck.WebSocketHandler:extend()
function Flood:on_message(data)
    local count, size = data:match("^(%d+) (%d+)$")
    local payload = ("x"):rep(tonumber(size))
    for i = 1, tonumber(count) do
        local ok, err = self:send(payload)
        if not ok then
            flood_results[#flood_results + 1] = ("stopped at %d: %s"):format(i, tostring(err))
            return
        end
    end
    self:send("done " .. count)
    flood_results[#flood_results + 1] = "done " .. count
end
Flood.on_close = record_close
app:route("/flood", Flood)
app:get("/flood-results", function() return { results = flood_results } end)

-- Streamed responses: ?chunks=N&size=S flushes N chunks of S bytes; one big
-- body of ?bytes=N in a single response.
local Stream = lubeck.Handler:extend()
function Stream:get()
    local chunks, size = tonumber(self.req:arg("chunks")), tonumber(self.req:arg("size"))
    local payload = ("s"):rep(size)
    for _ = 1, chunks do
        self:write(payload)
        local ok, err = self:flush()
        if not ok then
            flood_results[#flood_results + 1] = "stream: " .. tostring(err)
            return
        end
    end
    flood_results[#flood_results + 1] = "stream done"
end
app:route("/stream", Stream)
app:get("/big", function(req)
    return ("b"):rep(tonumber(req:arg("bytes")))
end)

-- Subprotocol choice by a class field; a server-side close on request.
local Proto = lubeck.WebSocketHandler:extend()
Proto.subprotocols = { "chat.v2", "chat.v1" }
function Proto:on_open() self:send("protocol " .. tostring(self.protocol)) end
function Proto:on_message(data)
    if data == "close me" then return self:close(4000, "bye now") end
    if data == "bad close" then return self:close(1005) end   -- raises: closes with 1011
    self:send(data)
end
Proto.on_close = record_close
app:route("/proto", Proto)

-- prepare may refuse the upgrade with an ordinary HTTP answer.
local Private = lubeck.WebSocketHandler:extend()
function Private:prepare()
    if self.req:arg("token") ~= "ok" then lubeck.abort(403, "no token\n") end
end
function Private:on_open() self:send("welcome") end
app:route("/private", Private)

-- A room: every socket listens on one channel; a message is published to all.
local room = lubeck.channel("ws-room")
local Room = lubeck.WebSocketHandler:extend()
function Room:on_open()
    self:subscribe(room, function(self, value) self:send(value) end)
    self:send("joined")
end
function Room:on_message(data) room:publish(data) end
Room.on_close = record_close
app:route("/room", Room)

app:post("/publish", function(req)
    return { woken = room:publish(req.body) }
end)

app:get("/closes", function()
    return { count = closes.count, last = closes.last, open = lubeck.stats and require("lubeck.core").ws.count(),
             pid = pid() }
end)

return app
