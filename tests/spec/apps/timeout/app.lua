-- request_timeout in-process: a request that waits too long is answered 504 and
-- its code is woken with nil, "timeout" (tests/spec/async_spec.lua).
local lubeck = require "lubeck"

local app = lubeck.app{ name = "timeout", request_timeout = 0.3 }

local log = {}
app:get("/log", function() return log end)

local Slow = lubeck.Handler:extend()
function Slow:get()
    local ok, err = lubeck.sleep(5)
    log[#log + 1] = { "woken", tostring(ok), tostring(err) }
    self:write("dropped")          -- docs/reference.md: dropped, the code goes on
    log[#log + 1] = { "wrote" }
end
function Slow:on_finish() log[#log + 1] = { "on_finish" } end
app:route("/slow", Slow)

app:get("/quick", function()
    lubeck.sleep(0.05)
    return "in time"
end)

local JSlow = lubeck.JSONHandler:extend()
function JSlow:get() lubeck.sleep(5) end
app:route("/slow.json", JSlow)

return app
