-- lubeck.app{ redis = url }: the url channels cross hosts through (docs/channels.md).
-- Only loading is tested here: tests/e2e/test_channels.py runs hosts on a real Redis.
local test = require "lubeck.test"
local cjson = require "cjson"

describe("the app's redis option", function()
    local c
    setup(function() c = test.client("tests/spec/apps/channel_redis") end)
    teardown(function() c:close() end)

    it("is the url in effect, read back as app.redis", function()
        assert.are.equal("redis://127.0.0.1:6390/3", cjson.decode(c:get("/").body).redis)
    end)

    it("refuses a bad url at the line that wrote it", function()
        local r = cjson.decode(c:get("/bad").body)
        assert.is_false(r.ok)
        assert.matches("app.lua:8: lubeck.app{...}: option 'redis': redis://127.0.0.1:port: bad port", r.err, 1, true)
    end)
end)
