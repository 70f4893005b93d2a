-- lubeck.shared in one process (tests/spec/shared_spec.lua).
local lubeck = require "lubeck"
local app = lubeck.app{}
local dict = lubeck.shared("spec")

app:post("/fill", function()
    local n, ok, err = 0, true, nil
    while ok do
        ok, err = dict:set("k" .. n, n)
        if ok then n = n + 1 end
    end
    for i = 0, n - 1 do dict:delete("k" .. i) end
    return { stored = n, err = err, after = dict:set("again", 1) }
end)

app:post("/kinds", function()
    dict:set("s", "text"); dict:set("n", 1.5); dict:set("b", false)
    local big_ok, big_err = dict:set("big", ("x"):rep(1000))
    local _, incr_err = dict:incr("s", 1)
    local _, missing_err = dict:incr("nope", 1)
    return {
        s = dict:get("s"), n = dict:get("n"), b = dict:get("b"), big_err = big_err,
        big_ok = big_ok, incr_err = incr_err, missing_err = missing_err,
        counted = dict:incr("count", 2, 10),
    }
end)

return app
