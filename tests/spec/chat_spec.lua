-- apps/chat in-process (docs/testing.md): how the showcase app is meant to be tested.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local APP = here .. "../../apps/chat"

describe("apps/chat", function()
    local c
    before_each(function() c = test.client(APP) end)
    after_each(function() c:close() end)

    it("serves its page", function()
        local r = c:get("/")
        assert.are.equal(200, r.status)
        assert.matches('<script src="/static/chat.js">', r.body, 1, true)
    end)

    it("answers a waiting poll when someone says something", function()
        local poll = c:start("GET", "/poll?since=0")
        c:run(0.02)
        assert.are.equal(1, cjson.decode(c:get("/stats").body).listening)
        local said = c:post("/say", { form = { name = "ann", text = "  hello  " } })
        assert.are.equal(201, said.status)
        assert.are.same({ id = 1 }, cjson.decode(said.body))
        local res = c:response(poll, 1)
        assert.are.equal(200, res.status)
        local news = cjson.decode(res.body)
        assert.are.equal(1, news.last)
        assert.are.equal(1, #news.messages)
        assert.are.equal("ann", news.messages[1].name)
        assert.are.equal("hello", news.messages[1].text)
    end)

    it("hands a late poller what was said since its last poll", function()
        c:post("/say", { json = { name = "a", text = "one" } })
        c:post("/say", { json = { text = "two" } })
        c:post("/say", { form = { name = "b", text = "three" } })
        local news = cjson.decode(c:get("/poll?since=1").body)
        assert.are.equal(3, news.last)
        assert.are.same({ "two", "three" }, { news.messages[1].text, news.messages[2].text })
        assert.are.equal("anonymous", news.messages[1].name)
    end)

    it("answers 204 when its wait ends with nothing new", function()
        assert.are.equal(204, c:get("/poll?since=0&wait=0.05").status)
    end)

    it("starts over when the poller saw ids from before a restart", function()
        c:post("/say", { form = { text = "fresh" } })
        local news = cjson.decode(c:get("/poll?since=99").body)
        assert.are.equal("fresh", news.messages[1].text)
    end)

    it("keeps a message of 500 bytes whole (lubeck.shared holds it in parts)", function()
        local text = ("é"):rep(200) .. ("x"):rep(100)
        assert.are.equal(201, c:post("/say", { form = { name = "long", text = text } }).status)
        local news = cjson.decode(c:get("/poll?since=0").body)
        assert.are.equal(text, news.messages[1].text)
    end)

    it("refuses an empty message or a long name", function()
        assert.are.equal(400, c:post("/say", { form = { text = "   " } }).status)
        assert.are.equal(400, c:post("/say", { form = { text = "x", name = ("n"):rep(41) } }).status)
    end)
end)
