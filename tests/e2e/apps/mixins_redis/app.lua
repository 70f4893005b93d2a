-- Sessions in Redis (port from MIXINS_REDIS_PORT): tests/e2e/test_mixins.py.
local lubeck = require "lubeck"
local session = require "lubeck.session"

local app = lubeck.app{
    name = "mixins_redis",
    cookie_secret = "redis-test-secret-0123456789",
    session_store = session.redis{
        host = "127.0.0.1", port = tonumber(os.getenv("MIXINS_REDIS_PORT") or "6379"), prefix = "sess:",
    },
}

app:get("/session/:action", lubeck.Handler:extend{ get = function(self, action)
    local s = self.session
    if action == "incr" then
        s.n = (s.n or 0) + 1
    elseif action == "clear" then
        s.n = nil
    end
    return s
end })

return app
