-- app:deliver splits a broadcast into frames of at most 128 connection ids,
-- Mongrel2's limit (one more and Mongrel2 drops the whole frame).
local test = require "lubeck.test"
local cjson = require "cjson"

local APP = (os.getenv("LUBECK_SOURCE_DIR") or ".") .. "/tests/spec/apps/deliver"

-- The ids a reply frame targets: "SENDER LEN:ID ID ..., BODY"
local function targets(frame)
    local len, at = frame:match("^%S+ (%d+):()")
    local ids = {}
    for id in frame:sub(at, at + tonumber(len) - 1):gmatch("%d+") do ids[#ids + 1] = tonumber(id) end
    return ids, frame:sub(at + tonumber(len) + 2)
end

describe("app:deliver", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    for _, case in ipairs({ { 1, 1 }, { 128, 1 }, { 129, 2 }, { 1000, 8 } }) do
        local n, frames = case[1], case[2]
        it(("sends %d ids in %d frame(s) of at most 128"):format(n, frames), function()
            local res = c:post("/deliver/" .. n)
            assert.are.same({ frames = frames }, cjson.decode(res.body))
            -- The client files each frame under every id it targets.
            local distinct, seen = {}, {}
            for id = 1000001, 1000000 + n do
                local box = c.inbox[id]
                assert.is_not_nil(box, "nothing for id " .. id)
                for _, frame in ipairs(box.frames) do distinct[frame] = true end
                c.inbox[id] = nil
            end
            local count = 0
            for frame in pairs(distinct) do
                count = count + 1
                local ids, body = targets(frame)
                assert.are.equal("news", body)
                assert.is_true(#ids >= 1 and #ids <= 128)
                for _, id in ipairs(ids) do seen[#seen + 1] = id end
            end
            assert.are.equal(frames, count)
            assert.are.equal(n, #seen)
        end)
    end

    it("refuses an id that is not a Mongrel2 connection id", function()
        assert.are.same({ ok = false, err = "conn id #2" }, cjson.decode(c:post("/deliver-bad").body))
    end)
end)
