-- request_timeout = 1: a request still waiting after a second is answered 504
-- and woken with nil, "timeout" (tests/e2e/test_async.py).
local lubeck = require "lubeck"

local app = lubeck.app{ name = "async-timeout", request_timeout = 1 }

local log = {}
app:get("/log", function() return log end)
app:get("/stats", function() return lubeck.stats() end)

local Slow = lubeck.Handler:extend()
function Slow:get()
    local ok, err = lubeck.sleep(10)
    log[#log + 1] = { "woken", tostring(ok), tostring(err) }
    return "too late"
end
function Slow:on_finish() log[#log + 1] = { "on_finish" } end
app:route("/slow", Slow)

-- A stream that outlives request_timeout: the head is out, so no 504 can follow.
local Stream = lubeck.Handler:extend()
function Stream:get()
    for i = 1, 10 do
        self:write("tick " .. i .. "\n")
        self:flush()
        local ok, err = lubeck.sleep(0.3)
        if not ok then log[#log + 1] = { "stream woken", tostring(err) }; break end
    end
end
app:route("/stream", Stream)

return app
