-- The redis option (tests/spec/channel_spec.lua): app.redis is the url in effect.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "channel_redis", redis = "redis://127.0.0.1:6390/3" }

app:get("/", function() return { redis = app.redis } end)
app:get("/bad", function()
    local ok, err = pcall(function() local bad = lubeck.app{ redis = "redis://127.0.0.1:port" }; return bad end)
    return { ok = ok, err = err }
end)

return app
