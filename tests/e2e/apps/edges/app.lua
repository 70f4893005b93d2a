-- Test app for tests/e2e/test_edges.py: what a host does at its edges (a
-- Mongrel2 that restarts, a stop under load, a host that goes silent, JSON
-- bodies that are not UTF-8).
local lubeck = require "lubeck"
local model = require "lubeck.model"

local app = lubeck.app{ name = "edges" }

local function pid() return lubeck.stats().pid end   -- which process answered
local PID = pid()

-- Which process answered, and an echo of n: a client checks it got its own answer.
app:get("/who", function(req)
    return { pid = PID, n = req:arg("n"), conn = req.conn_id }
end)

-- In flight for a while (a restart or a stop happens meanwhile).
app:get("/slow", function(req)
    local ok, err = lubeck.sleep(tonumber(req:arg("wait")) or 3)
    return { slept = ok == true, err = err or false, pid = PID, n = req:arg("n") }
end)

-- A long poll, as apps/chat's: woken by a publish, or by the host stopping.
local room = lubeck.channel("edges")
app:get("/poll", function(req)
    local value, err = room:wait(30)
    return { value = value or false, err = err or false }
end)

-- WebSocket sessions: how many are open, how many ended, and a broadcast to all.
local sessions, ended, last_end = {}, 0, false
local Session = lubeck.WebSocketHandler:extend()
function Session:on_open() sessions[self] = true end
function Session:on_message(data) self:send("echo " .. data) end
function Session:on_close(code)
    sessions[self] = nil
    ended = ended + 1
    last_end = code or false
end
app:route("/ws", Session)

app:get("/sessions", function()
    local open = 0
    for _ in pairs(sessions) do open = open + 1 end
    return { open = open, ended = ended, last_end = last_end }
end)

app:get("/broadcast", function()
    local n = 0
    for s in pairs(sessions) do
        if s:send("broadcast") then n = n + 1 end
    end
    return { sent = n }
end)

-- JSON bodies three ways: req:json(), a JSONHandler, validate against a model.
app:post("/json", function(req)
    local value, err = req:json()
    if value == nil then return 400, { error = err } end
    return { value = value }
end)

local Api = lubeck.JSONHandler:extend()
function Api:post()
    local value, err = self.req:json()
    if value == nil then return 400, { error = err } end
    return { value = value }
end
app:route("/api", Api)

local Note = model.define("Note", { text = model.string{ required = true, max = 100 } })
local Validated = lubeck.Handler:extend()
function Validated:post() return self:validate(Note) end
app:route("/validate", Validated)

return app
