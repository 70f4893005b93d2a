-- docs/reference.md, Waiting without blocking, in-process: sleep, spawn, channels, and how a request that is left
-- (client gone, request_timeout) wakes with nil, reason. Apps: tests/spec/apps/.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local APPS = here .. "apps/"

local function json(res)
    assert.are.equal(200, res.status, res.body)
    return cjson.decode(res.body)
end

local function seconds()
    local ffi = require "ffi"
    pcall(ffi.cdef, "typedef struct { long s, ns; } lubeck_spec_ts; int clock_gettime(int, lubeck_spec_ts *);")
    local ts = ffi.new("lubeck_spec_ts")
    return function()
        ffi.C.clock_gettime(1, ts)   -- CLOCK_MONOTONIC
        return tonumber(ts.s) + tonumber(ts.ns) * 1e-9
    end
end
local now = seconds()

describe("lubeck.sleep and lubeck.now", function()
    local c
    setup(function() c = test.client(APPS .. "async") end)
    teardown(function() c:close() end)

    it("suspends the request for the time asked and returns true", function()
        local started = now()
        local r = json(c:get("/sleep?s=0.1"))
        assert.is_true(r.ok)
        assert.is_nil(r.err)
        assert.is_true(r.slept >= 0.09, "lubeck.now() moved " .. r.slept)
        assert.is_true(now() - started >= 0.09)
    end)

    it("lets other requests run meanwhile: 20 sleeps of 0.2 s take about 0.2 s", function()
        local started = now()
        local conns = {}
        for i = 1, 20 do conns[i] = c:start("GET", "/sleep?s=0.2") end
        for i = 1, 20 do
            local res = c:response(conns[i], 5)
            assert.are.equal(200, res.status)
            assert.is_true(cjson.decode(res.body).ok)
        end
        local took = now() - started
        assert.is_true(took < 0.6, "took " .. took)
    end)

    it("waits inside a coroutine of the app's own, as ngx_lua does", function()
        local r = json(c:get("/own-coroutine"))
        assert.is_true(r.ok)
        assert.is_true(r.slept)
        assert.are.equal("dead", r.status)
    end)
end)

describe("lubeck.spawn", function()
    local c
    setup(function() c = test.client(APPS .. "async") end)
    teardown(function() c:close() end)

    it("returns a thread whose wait gives true and every result, nil included", function()
        local r = json(c:get("/spawn/results"))
        assert.are.equal("running", r.status_before)
        assert.are.equal("dead", r.status_after)
        assert.are.same({ true, 42, "sum", cjson.null, true }, r.results)
    end)

    it("runs threads concurrently", function()
        local r = json(c:get("/spawn/concurrent"))
        assert.are.same({ 1, 2, 3, 4, 5 }, r.got)
        assert.is_true(r.took < 0.3, "5 threads of 0.1 s took " .. r.took)
    end)

    it("gives false and the error of a thread that failed", function()
        local r = json(c:get("/spawn/error"))
        assert.is_false(r.ok)
        assert.matches("boom in thread", r.err, 1, true)
        assert.are.equal("failed", r.status)
    end)

    it("gives false, 'timeout' when the wait times out, and the thread goes on", function()
        local r = json(c:get("/spawn/timeout"))
        assert.is_false(r.ok)
        assert.are.equal("timeout", r.err)
        assert.is_true(r.ok2)
        assert.are.equal("late", r.v2)
    end)

    it("lets a thread nobody waits for outlive the response", function()
        c:post("/log/clear")
        local res = c:get("/spawn/no-wait")
        assert.are.equal("answered", res.body)
        c:run(1)
        assert.are.same({ { "background done" } }, json(c:get("/log")))
        local stats = json(c:get("/stats"))
        assert.are.equal(1, stats.requests)
        assert.are.equal(1, stats.coroutines)
    end)

    it("raises on misuse", function()
        local r = json(c:get("/spawn/bad"))
        assert.is_false(r.ok)
        assert.matches("function expected", r.err, 1, true)
    end)

    it("keeps a thread's error value when it is not a string", function()
        -- Regression, once a bug at the end of a thread (now host/lua/lua_thread.c, keep_results):
        -- lua_replace(co, 1) with the error as the only value on the stack pops it, so t:wait() gives false, nil.
        local r = json(c:get("/spawn/error-at-once"))
        assert.is_false(r.ok)
        assert.are.equal("table", r.err_type)
        assert.are.equal(7, r.code)
    end)
end)

describe("lubeck.channel", function()
    local c
    setup(function() c = test.client(APPS .. "async") end)
    teardown(function() c:close() end)

    it("wakes every waiter with the published value, in one publish", function()
        c:post("/log/clear")
        local conns = {}
        for i = 1, 5 do conns[i] = c:start("GET", "/chan/wait?id=" .. i) end
        c:run(0.02)
        assert.are.equal(5, json(c:get("/stats")).channel_waiters)
        local r = json(c:post("/chan/publish", { json = { value = { text = "hi", n = 1 } } }))
        assert.are.equal(5, r.woken)
        for i = 1, 5 do
            local res = c:response(conns[i], 1)
            assert.are.equal(200, res.status)
            assert.are.same({ value = { text = "hi", n = 1 } }, cjson.decode(res.body))
        end
        assert.are.equal(0, json(c:get("/stats")).channel_waiters)
    end)

    it("only wakes the waiters of that name", function()
        local a = c:start("GET", "/chan/wait?name=a&timeout=0.3")
        local b = c:start("GET", "/chan/wait?name=b&timeout=0.3")
        c:run(0.02)
        assert.are.equal(1, json(c:post("/chan/publish?name=a", { json = { value = "for a" } })).woken)
        assert.are.same({ value = "for a" }, cjson.decode(c:response(a, 1).body))
        assert.are.same({ err = "timeout" }, cjson.decode(c:response(b, 1).body))
    end)

    it("carries numbers exactly", function()
        local conn = c:start("GET", "/chan/wait?name=numbers")
        c:run(0.02)
        local value = { 123456789012345, 0.1, -2 ^ 53 + 1, 1 / 3 }
        assert.are.equal(1, json(c:post("/chan/publish?name=numbers", { json = { value = value } })).woken)
        -- the reply's own JSON keeps only 14 digits: the app sends them as strings
        local res = c:response(conn, 1)
        assert.are.equal(200, res.status)
        assert.are.same({ "123456789012345", "0.10000000000000001", "-9007199254740991", "0.33333333333333331" },
            cjson.decode(res.body).exact)
    end)

    it("returns 0 when nobody waits", function()
        assert.are.equal(0, json(c:post("/chan/publish?name=empty", { json = { value = 1 } })).woken)
    end)

    it("times out with nil, 'timeout'", function()
        local started = now()
        local r = json(c:get("/chan/wait?name=quiet&timeout=0.1"))
        assert.are.same({ err = "timeout" }, r)
        assert.is_true(now() - started >= 0.09)
        assert.are.equal(0, json(c:get("/stats")).channel_waiters)
    end)

    it("raises on a bad name or a value JSON cannot carry", function()
        local r = json(c:get("/chan/bad"))
        assert.is_false(r.ok1)
        assert.matches("non%-empty string", r.err1)
        assert.is_false(r.ok2)
        assert.matches("not JSON%-encodable", r.err2)
    end)
end)

describe("a request whose client went away", function()
    local c, baseline
    setup(function()
        c = test.client(APPS .. "async")
        baseline = json(c:get("/stats"))
    end)
    teardown(function() c:close() end)

    for _, on in ipairs({ "sleep", "channel", "spawn" }) do
        it("is woken with nil, 'closed' in " .. on .. ", runs on, sends nothing and leaves nothing", function()
            c:post("/log/clear")
            local conn = c:start("GET", "/hang?on=" .. on)
            c:run(0.02)
            local busy = json(c:get("/stats"))
            assert.is_true(busy.requests > baseline.requests)
            c:disconnect(conn)
            c:run(0.2)
            local log = json(c:get("/log"))
            local expect = { { "hang", on, "nil", "closed" }, { "after", "nil", "closed" } }
            if on == "spawn" then table.insert(expect, 1, { "thread", "nil", "closed" }) end
            assert.are.same(expect, log)
            local res = c:response(conn, 0.05)
            assert.is_nil(res.status)
            assert.are.equal(0, #res.frames)
            assert.are.same(baseline, json(c:get("/stats")))
        end)
    end

    it("lets a handler that yields in a loop go on taking turns", function()
        -- Regression, once a bug in host/server/host.c cancel_req: it cancels until none of the request's
        -- tasks is waiting, and a bare coroutine.yield() leaves the task
        -- WAIT_READY, so each turn is cancelled again inside the same callback:
        -- the clock never moves and a loop that ends by time never ends (here
        -- it stops at its cap of 100000 turns; without one the worker hangs).
        c:post("/log/clear")
        local conn = c:start("GET", "/yielder")
        c:run(0.03)
        c:disconnect(conn)
        c:run(1)
        local entry = json(c:get("/log"))[1]
        assert.are.equal("yielder", entry[1])
        assert.is_true(entry[2] < 100000, "turns: " .. entry[2])
        assert.is_true(entry[3] >= 0.19, "elapsed: " .. entry[3])
    end)

    it("leaves other requests alone", function()
        local keep = c:start("GET", "/chan/wait?name=other&timeout=0.2")
        local gone = c:start("GET", "/hang")
        c:run(0.02)
        c:disconnect(gone)
        assert.are.same({ err = "timeout" }, cjson.decode(c:response(keep, 1).body))
    end)
end)

describe("request_timeout", function()
    local c
    setup(function() c = test.client(APPS .. "timeout") end)
    teardown(function() c:close() end)

    it("answers 504, wakes the handler with nil, 'timeout' and runs on_finish", function()
        local started = now()
        local res = c:get("/slow")
        local took = now() - started
        assert.are.equal(504, res.status)
        assert.matches("504 Gateway Timeout", res.body, 1, true)
        assert.is_true(took >= 0.25 and took < 2, "took " .. took)
        c:run(0.1)
        local log = json(c:get("/log"))
        assert.are.same({ "woken", "nil", "timeout" }, log[1])
        assert.are.same({ "on_finish" }, log[#log])
    end)

    it("drops what the woken handler writes instead of raising", function()
        -- Regression, once a bug in lua/lubeck/pipeline.lua on_timeout: the 504 goes out through
        -- resp:send_error, which marks the handler's own response finished, so
        -- its next self:write raises "write() after finish()" (logged as an
        -- error) and the rest of its code never runs.
        c:get("/slow")
        c:run(0.1)
        local log = json(c:get("/log"))
        assert.are.same({ "wrote" }, log[#log - 1])
    end)

    it("answers 504 in JSON under JSONHandler", function()
        local res = c:get("/slow.json")
        assert.are.equal(504, res.status)
        assert.are.same({ status = 504, error = "gateway timeout" }, cjson.decode(res.body))
    end)

    it("leaves requests that finish in time alone", function()
        assert.are.equal("in time", c:get("/quick").body)
    end)
end)
