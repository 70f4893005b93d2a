-- Channels across workers and hosts (tests/e2e/test_channels.py): every answer
-- says which process gave it, so a test knows where each poll waited.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "channels" }

local function pid() return lubeck.stats().pid end   -- which process answered

local room = lubeck.channel("room")

app:get("/", function() return "ok" end)
app:get("/poll", function(req)
    local value, err = room:wait(tonumber(req:arg("wait")) or 10)
    return { value = value, err = err, pid = pid() }
end)
app:get("/say", function(req)
    return { woken_here = room:publish(req:arg("m")), pid = pid() }
end)
-- Every value published within wait seconds, up to n of them, in arrival order.
app:get("/collect", function(req)
    local n, deadline = tonumber(req:arg("n")) or 1, lubeck.now() + (tonumber(req:arg("wait")) or 10)
    local values = {}
    while #values < n and lubeck.now() < deadline do
        local value = room:wait(deadline - lubeck.now())
        if value ~= nil then values[#values + 1] = value end
    end
    return { values = values, pid = pid() }
end)
-- hold: answer after that many seconds (the waiters counted then), so that
-- requests sent at once are in flight together (test_channels.parked_per_process).
app:get("/waiters", function(req)
    local hold = tonumber(req:arg("hold"))
    if hold then lubeck.sleep(hold) end
    return { waiters = lubeck.stats().channel_waiters, pid = pid(), redis = app.redis }
end)

return app
