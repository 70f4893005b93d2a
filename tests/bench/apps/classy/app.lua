-- The class-handler benchmark app (tests/bench/run.sh): a Handler subclass, a
-- regex route with a capture, a query argument and a cookie, so the measured path
-- covers method dispatch and the request accessors, not just a canned string.
local lubeck = require "lubeck"
local app = lubeck.app{ name = "classy" }

local Hello = lubeck.Handler:extend()

function Hello:get(name)
  return "Hello, " .. name .. " (" .. (self:get_argument("greeting", "hi")) .. ", "
    .. tostring(self.req:cookie("session")) .. ")"
end

app:route("^/hello/(\\w+)$", Hello)
return app
