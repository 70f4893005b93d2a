-- An app without a cookie_secret: secure cookies and sessions must fail loudly
-- (500, with the reason in the log), everything else keeps working.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "mixins_nosecret" }

app:get("/session", lubeck.Handler:extend{ get = function(self)
    self.session.n = 1
    return "stored"
end })

app:get("/cookie", lubeck.Handler:extend{ get = function(self)
    self:set_secure_cookie("a", "b")
    return "set"
end })

app:get("/plain", function() return "no secret needed" end)

return app
