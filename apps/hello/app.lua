-- The smallest useful lubeck app: `make run`, then open http://127.0.0.1:6767/
local lubeck = require "lubeck"

local app = lubeck.app{ name = "hello" }

app:get("/", function(req)
    return "Hello from Lua"
end)

app:get("/hello/:name", function(req, name)
    return { greeting = "Hello, " .. name, path = req.path }
end)

return app
