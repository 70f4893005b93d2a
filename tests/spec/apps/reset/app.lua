-- App for tests/spec/front_reset_spec.lua: requests that wait, and what their
-- waits and on_finish saw.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "reset" }
local seen = {}

local Sleeper = lubeck.Handler:extend()
function Sleeper:get()
    local ok, err = lubeck.sleep(5)
    seen.sleep = err or tostring(ok)
    return "slept"
end
function Sleeper:on_finish() seen.finished = (seen.finished or 0) + 1 end
app:route("/sleep", Sleeper)

app:get("/channel", function()
    local value, err = lubeck.channel("reset"):wait(5)
    seen.channel = err or value
    return "woken"
end)

app:get("/seen", function() return seen end)

return app
