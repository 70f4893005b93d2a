-- The Lua half of apps/embed (main.c is the C half; docs/embedding.md explains
-- both). Its handlers call the C functions the program registered with
-- lubeck_register, through require("lubeck.native").
local lubeck = require "lubeck"
local native = require "lubeck.native"

local app = lubeck.app{ name = "embed" }

app:get("/", function(req)
    return { ticks = native.ticks(), greeting = native.greet("embed") }
end)

-- Requests that are still waiting when the program stops: lubeck_free must
-- stop the watchers they started (a timer, a channel wait, a socket, a thread
-- join) and free them. tests/e2e/test_embed.py stops the program while they wait.
app:get("/wait/sleep", function(req)
    lubeck.sleep(3600)
    return "woke up"
end)

app:get("/wait/channel", function(req)
    return lubeck.channel("embed"):wait() or "no message"
end)

app:get("/wait/socket/:port", function(req, port)
    local sock = lubeck.tcp()
    sock:settimeout(3600 * 1000)
    local ok, err = sock:connect("127.0.0.1", tonumber(port))
    if not ok then return 502, err end
    return sock:receive("*l") or "no line"
end)

app:get("/wait/thread", function(req)
    local t = lubeck.spawn(function() lubeck.sleep(3600) return "done" end)
    local _, result = t:wait()
    return result or "no result"
end)

return app
