-- lubeck.shared: values of each kind, its errors, and what happens when full.
local test = require "lubeck.test"
local cjson = require "cjson"

describe("lubeck.shared", function()
    local c
    setup(function() c = test.client("tests/spec/apps/shared") end)
    teardown(function() c:close() end)

    it("keeps strings, numbers and booleans and says why it refuses", function()
        local r = cjson.decode(c:post("/kinds").body)
        assert.are.equal("text", r.s)
        assert.are.equal(1.5, r.n)
        assert.is_false(r.b)
        assert.is_nil(r.big_ok)
        assert.are.equal("too large", r.big_err)
        assert.are.equal("not a number", r.incr_err)
        assert.are.equal("not found", r.missing_err)
        assert.are.equal(12, r.counted)
    end)

    it("answers no memory when full, and takes entries again once freed", function()
        local r = cjson.decode(c:post("/fill").body)
        assert.are.equal("no memory", r.err)
        assert.is_true(r.stored > 5000)
        assert.is_true(r.after)
    end)
end)
