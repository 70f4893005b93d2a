-- A long-polling chat room: Brubeck's long-polling demo, grown up.
-- Every open page keeps one GET /poll waiting on lubeck.channel("chat"); a
-- POST /say stores the message and publishes, which answers all of them at
-- once. Each poll says which message it saw last (since=ID), and the room keeps
-- the last messages, so nothing said between two polls is lost.
--
--   GET  /                 the page (static/chat.js does the polling)
--   GET  /poll?since=ID    200 {messages=[...], last=ID} once there is news,
--                          204 after POLL_SECONDS without any: poll again
--   POST /say              name, text (a form or JSON) → 201 {id=ID}
--   GET  /stats            {listening=N, last=ID, worker=PID}: N polls wait in that worker
--
-- The history lives where every process sees it (history.lua): lubeck.shared
-- for the workers of one host, Redis when `--redis URL` joins several hosts
-- (the channel then crosses hosts through the same Redis).
local lubeck = require "lubeck"
local history = require "history"

local app = lubeck.app{ name = "chat" }

local KEEP = 100           -- messages kept for pollers that were away a moment
local POLL_SECONDS = 25    -- well inside request_timeout (60) and browsers' patience

local room = lubeck.channel("chat")
local said = history.new(app.redis, KEEP)   -- app.redis: --redis, or nil on one host

local UNAVAILABLE = { error = "the room's history is unavailable, try again shortly" }

local PAGE = [[<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lubeck chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/chat.css"></head>
<body><h1>lubeck chat</h1>
<p>Long polling. The same room over one WebSocket: <a href="/static/ws.html">the WebSocket page</a>.</p>
<ul id="messages"></ul>
<form id="say" action="/say" method="post">
  <input name="name" placeholder="your name" maxlength="40">
  <input name="text" placeholder="say something" maxlength="500" required autofocus>
  <button>Send</button>
</form>
<script src="/static/room.js"></script>
<script src="/static/chat.js"></script></body></html>
]]

app:get("/", function(req) return PAGE end)

app:get("/poll", function(req)
    local since = tonumber(req:arg("since")) or 0
    local last = said:last()
    if not last then return 503, UNAVAILABLE end
    if since > last then since = 0 end             -- the history started over: so does the page
    local news = said:after(since)
    if not news then return 503, UNAVAILABLE end
    if #news == 0 then
        local wait = math.max(0, math.min(tonumber(req:arg("wait")) or POLL_SECONDS, POLL_SECONDS))
        local _, err = room:wait(wait)             -- only this request waits; the host serves others
        if err == "closed" then return end         -- the browser went away: nobody to answer
        news = said:after(since, true)
        if not news then return 503, UNAVAILABLE end
        if #news == 0 then return 204 end          -- nothing new: poll again
    end
    return { messages = news, last = news[#news].id }
end)

local function trim(s)
    if type(s) ~= "string" then return "" end
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

app:post("/say", function(req)
    local input
    if (req:header("content-type") or ""):find("json", 1, true) then
        input = req:json() or {}
    else
        input = req:args()
    end
    local name, text = trim(input.name), trim(input.text)
    if name == "" then name = "anonymous" end
    if text == "" or #text > 500 or #name > 40 then
        return 400, { error = "say 1 to 500 characters, with a name of up to 40" }
    end
    local id = said:add(name, text)
    if not id then return 503, UNAVAILABLE end
    room:publish(id)                               -- wakes every waiting poll, on every host
    return 201, { id = id }
end)

app:get("/stats", function(req)
    local last = said:last()
    if not last then return 503, UNAVAILABLE end
    local stats = lubeck.stats()
    return { listening = stats.channel_waiters, last = last, worker = stats.pid }
end)

-- The WebSocket room (docs/websockets.md), beside the long-poll one: the same
-- channel and history feed both, so a message said on either side reaches
-- every poll and every socket. /static/ws.html is its page (static/ws.js).
--   WS   /ws?since=ID  sends {messages=[...], last=ID} (the recent ones on open, then
--               news); takes {"name": ..., "text": ...} like POST /say
local cjson = require "cjson"
local ChatSocket = lubeck.WebSocketHandler:extend()

function ChatSocket:get() return self:redirect("/static/ws.html") end

-- Sends what this socket has not seen yet; sending may wait (it is paced), and
-- whatever was said meanwhile goes out on the next turn of the loop.
local function catch_up(self)
    while true do
        local news = said:after(self.seen)
        if not news or #news == 0 then return end
        self.seen = news[#news].id
        if not self:send({ messages = news, last = self.seen }) then return end
    end
end

function ChatSocket:on_open()
    local last_id = said:last() or 0
    local since = tonumber(self.req:arg("since"))  -- a page that reconnects says what it saw
    if not since or since > last_id then since = math.max(0, last_id - 20) end
    self.seen = since
    catch_up(self)
    self:subscribe(room, catch_up)                 -- woken by every publish, from either side
end

function ChatSocket:on_message(data)
    local ok, input = pcall(cjson.decode, data)
    if not ok or type(input) ~= "table" then return self:send({ error = "send JSON {name, text}" }) end
    local name, text = trim(input.name), trim(input.text)
    if name == "" then name = "anonymous" end
    if text == "" or #text > 500 or #name > 40 then
        return self:send({ error = "say 1 to 500 characters, with a name of up to 40" })
    end
    local id = said:add(name, text)
    if not id then return self:send(UNAVAILABLE) end
    room:publish(id)
end

app:route("/ws", ChatSocket)

return app
