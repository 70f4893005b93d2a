-- Workers, reload and graceful stop (tests/e2e/test_workers.py).
local lubeck = require "lubeck"

local app = lubeck.app{ name = "workers" }

local function pid() return lubeck.stats().pid end   -- which process answered

app:get("/", function() return "version 0" end) -- reload-test
app:get("/pid", function() return tostring(pid()) end)
app:get("/slow", function() lubeck.sleep(1); return "slow done" end)
app:get("/spin", function() while true do end end)

local room = lubeck.channel("room")
app:get("/poll", function()
    local v, err = room:wait(10)
    return { value = v, err = err, pid = pid() }
end)
app:get("/say", function(req)
    return { woken_here = room:publish(req:arg("m")), pid = pid() }
end)

local counters = lubeck.shared("counters")
app:get("/count", function()
    return { n = counters:incr("hits", 1, 0), pid = pid() }
end)
app:get("/cache", function(req)
    local key, value, ttl = req:arg("k"), req:arg("v"), tonumber(req:arg("ttl"))
    if value then assert(counters:set(key, value, ttl)) end
    return { value = counters:get(key) }
end)

return app
