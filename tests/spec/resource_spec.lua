-- app:resource sends every digit of a number, as every other JSON response
-- does (lubeck.json); and the method helpers, class dispatch, Allow headers and
-- the test client agree on one list of methods. App: tests/spec/apps/resource.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

describe("app:resource", function()
    local c
    setup(function() c = test.client(here .. "apps/resource") end)
    teardown(function() c:close() end)

    it("answers a 15-digit integer with all of its digits", function()
        local res = c:post("/accounts", { json = { number = 123456789012345, label = "big" } })
        assert.are.equal(201, res.status, res.body)
        assert.truthy(res.body:find('"number":123456789012345', 1, true), res.body)
        local item = c:get(res.headers.location)
        assert.are.equal(200, item.status)
        assert.truthy(item.body:find('"number":123456789012345', 1, true), item.body)
        local list = c:get("/accounts")
        assert.truthy(list.body:find('"number":123456789012345', 1, true), list.body)
        assert.are.equal("big", cjson.decode(list.body)[1].label)
    end)
end)

describe("the methods lubeck knows", function()
    local c
    setup(function() c = test.client(here .. "apps/resource") end)
    teardown(function() c:close() end)

    it("each have a route helper that takes only that method", function()
        for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
            local res = c[m](c, "/verb")
            assert.are.equal(200, res.status)
            assert.are.equal(m:upper(), res.body)
        end
        assert.are.equal("", c:head("/verb").body)           -- HEAD: the GET route, no body
        local res = c:options("/verb")
        assert.are.equal(204, res.status)
        assert.are.equal("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", res.headers.allow)
    end)

    it("are what a class's Allow lists, in the same order", function()
        local res = c:options("/pair")
        assert.are.equal(204, res.status)
        assert.are.equal("GET, HEAD, DELETE, OPTIONS", res.headers.allow)
        res = c:put("/pair")
        assert.are.equal(405, res.status)
        assert.are.equal("GET, HEAD, DELETE, OPTIONS", res.headers.allow)
        assert.are.equal("deleted", c:delete("/pair").body)
    end)
end)
