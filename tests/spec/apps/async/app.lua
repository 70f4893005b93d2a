-- The spec app for docs/reference.md, Waiting without blocking: sleep, spawn, channels and cancellation, driven
-- in-process by tests/spec/async_spec.lua. /log reads back what handlers saw
-- after their client had gone.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "async" }

local log = {}
local function record(...) log[#log + 1] = { ... } end

app:get("/log", function() return log end)
app:post("/log/clear", function() log = {}; return {} end)
app:get("/stats", function() return lubeck.stats() end)

-- sleep and now ------------------------------------------------------------------

app:get("/sleep", function(req)
    local seconds = tonumber(req:arg("s", "0.05"))
    local before = lubeck.now()
    local ok, err = lubeck.sleep(seconds)
    return { ok = ok, err = err, slept = lubeck.now() - before }
end)

app:get("/own-coroutine", function()
    local co = coroutine.create(function() return lubeck.sleep(0.01) end)
    local ok, slept = coroutine.resume(co)
    return { ok = ok, slept = slept, status = coroutine.status(co) }
end)

-- spawn ---------------------------------------------------------------------------

app:get("/spawn/results", function()
    local t = lubeck.spawn(function(a, b)
        lubeck.sleep(0.02)
        return a + b, "sum", nil, true
    end, 40, 2)
    local status = t:status()
    return { status_before = status, results = { t:wait() }, status_after = t:status() }
end)

app:get("/spawn/concurrent", function()
    local started = lubeck.now()
    local threads = {}
    for i = 1, 5 do
        threads[i] = lubeck.spawn(function() lubeck.sleep(0.1); return i end)
    end
    local got = {}
    for i = 1, 5 do
        local ok, v = threads[i]:wait()
        got[i] = ok and v
    end
    return { got = got, took = lubeck.now() - started }
end)

app:get("/spawn/error", function()
    local t = lubeck.spawn(function() lubeck.sleep(0.01); error("boom in thread") end)
    local ok, err = t:wait()
    return { ok = ok, err = tostring(err), status = t:status() }
end)

app:get("/spawn/error-at-once", function()
    local t = lubeck.spawn(function() error({ code = 7 }) end)
    local ok, err = t:wait()
    return { ok = ok, err_type = type(err), code = type(err) == "table" and err.code or nil }
end)

app:get("/spawn/timeout", function()
    local t = lubeck.spawn(function() lubeck.sleep(0.3); return "late" end)
    local ok, err = t:wait(0.05)
    local ok2, v2 = t:wait()           -- the thread goes on and can be waited for again
    return { ok = ok, err = err, ok2 = ok2, v2 = v2 }
end)

app:get("/spawn/no-wait", function()
    -- A thread nobody waits for finishes after the response left.
    lubeck.spawn(function() lubeck.sleep(0.05); record("background done") end)
    return "answered"
end)

app:get("/spawn/bad", function()
    local ok, err = pcall(lubeck.spawn, 42)
    return { ok = ok, err = tostring(err) }
end)

-- channels -----------------------------------------------------------------------

app:get("/chan/wait", function(req)
    local ch = lubeck.channel(req:arg("name", "room"))
    local value, err = ch:wait(tonumber(req:arg("timeout")))
    record("wait", req:arg("id"), value == nil and "nil" or value, err)
    if req:arg("name") == "numbers" and type(value) == "table" then
        local exact = {}
        for i, x in ipairs(value) do
            exact[i] = x == math.floor(x) and ("%d"):format(x) or ("%.17g"):format(x)
        end
        return { exact = exact }
    end
    return { value = value, err = err }
end)

app:post("/chan/publish", function(req)
    local ch = lubeck.channel(req:arg("name", "room"))
    local body = req:json()
    return { woken = ch:publish(body and body.value) }
end)

app:get("/chan/bad", function()
    local ok1, err1 = pcall(lubeck.channel, "")
    local ok2, err2 = pcall(function() return lubeck.channel("x"):publish(function() end) end)
    return { ok1 = ok1, err1 = tostring(err1), ok2 = ok2, err2 = tostring(err2) }
end)

-- cancellation ---------------------------------------------------------------------

-- Waits until the client goes away, then records what the wait returned and
-- that code after it still runs (but its writes are dropped).
app:get("/hang", function(req)
    local what = req:arg("on", "sleep")
    local a, b
    if what == "sleep" then
        a, b = lubeck.sleep(30)
    elseif what == "channel" then
        a, b = lubeck.channel("never"):wait()
    elseif what == "spawn" then
        local t = lubeck.spawn(function()
            local x, y = lubeck.sleep(30)
            record("thread", tostring(x), tostring(y))
        end)
        a, b = t:wait()
    end
    record("hang", what, tostring(a), tostring(b))
    -- A cancelled request never waits again: every wait returns at once.
    local c, d = lubeck.sleep(10)
    record("after", tostring(c), tostring(d))
    return "nobody reads this"
end)

-- A cooperative loop: coroutine.yield() gives the other requests a turn, and
-- the loop ends by the clock (capped, so a bug cannot hang the spec).
app:get("/yielder", function()
    lubeck.sleep(0.01)
    local started, turns = lubeck.now(), 0
    while lubeck.now() - started < 0.2 and turns < 100000 do
        coroutine.yield()
        turns = turns + 1
    end
    record("yielder", turns, lubeck.now() - started)
    return "done"
end)

return app
