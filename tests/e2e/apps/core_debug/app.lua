-- lubeck.app{debug = true}: error pages carry the traceback (test_core.py).
local lubeck = require "lubeck"

local app = lubeck.app{ name = "core_debug", debug = true }

local function explode() error("debug kaboom") end

app:get("/boom", function(req) explode() end)

local Api = lubeck.JSONHandler:extend()
function Api:get() explode() end
app:route("/api/boom", Api)

return app
