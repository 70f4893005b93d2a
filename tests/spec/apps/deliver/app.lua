-- app:deliver: Mongrel2 broadcast (tests/spec/deliver_spec.lua).
local lubeck = require "lubeck"
local app = lubeck.app{}

app:post("/deliver/:n", function(req, n)
    local ids = {}
    for i = 1, tonumber(n) do ids[i] = 1000000 + i end   -- clear of the client's own ids
    return { frames = app:deliver(req.sender, ids, "news") }
end)

app:post("/deliver-bad", function(req)
    local ok, err = pcall(app.deliver, app, req.sender, { 1, -5 }, "x")
    return { ok = ok, err = tostring(err):match("conn id #2") }
end)

return app
