-- host_front_reset: the Mongrel2 that sent these requests restarted, so their
-- connection ids may name other clients now. App: tests/spec/apps/reset.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local APP = here .. "apps/reset"

describe("a front reset", function()
    it("ends every waiting request silently: woken with nil, \"closed\", on_finish runs, nothing is sent", function()
        local c = test.client(APP)
        c:start("GET", "/sleep")
        c:start("GET", "/channel")
        c:run(0.05)
        assert.are.equal(2, c:inflight())
        c:front_reset()
        local sent, closed = c:run(0.5)
        assert.are.equal(0, c:inflight())
        assert.are.equal("", sent)         -- no response, no close: not a byte
        assert.is_falsy(closed)
        local seen = cjson.decode(c:get("/seen").body)
        assert.are.same({ sleep = "closed", channel = "closed", finished = 1 }, seen)
        c:close()
    end)

    it("leaves the requests that came after it alone", function()
        local c = test.client(APP)
        c:front_reset()
        local r = c:get("/channel", { timeout = 0.2 })
        assert.are.same({}, r.frames)      -- still waiting: nothing was published
        assert.are.equal(1, c:inflight())
        c:close()
    end)
end)
