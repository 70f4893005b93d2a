-- What a newcomer met in the first hour, through lubeck.test: blank titles in
-- apps/todo, JSON slashes, the favicon, error pages, the chat page's links.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local apps = here .. "../../apps/"

describe("apps/todo titles", function()
    local client
    setup(function() client = test.client(apps .. "todo") end)
    teardown(function() client:close() end)

    it("refuses a title of spaces, from JSON and from a form", function()
        local res = client:post("/todos", { json = { title = "   " } })
        assert.are.equal(400, res.status)
        assert.truthy(cjson.decode(res.body).errors.title)
        res = client:post("/todos", { form = { title = " \t " } })
        assert.are.equal(400, res.status)
        assert.truthy(cjson.decode(res.body).errors.title)
    end)

    it("keeps a title without its surrounding spaces", function()
        local res = client:post("/todos", { form = { title = "  buy milk  " } })
        assert.are.equal(201, res.status)
        assert.are.equal("buy milk", cjson.decode(res.body).title)
    end)
end)

describe("apps/hello", function()
    local client
    setup(function() client = test.client(apps .. "hello", { debug = true }) end)
    teardown(function() client:close() end)

    it("writes / in JSON as it is", function()
        local res = client:get("/hello/ann")
        assert.are.equal('"path":"/hello/ann"', res.body:match('"path":"[^"]*"'))
    end)

    it("answers /favicon.ico with the built-in icon", function()
        local res = client:get("/favicon.ico")
        assert.are.equal(200, res.status)
        assert.are.equal("image/svg+xml", res.headers["Content-Type"])
        assert.truthy(res.body:find("<svg", 1, true))
    end)

    it("has a 404 page with a heading, a sentence and a way home", function()
        local res = client:get("/nowhere")
        assert.are.equal(404, res.status)
        assert.truthy(res.body:find("<h1>404 Not Found</h1><p>There is nothing at this address.", 1, true))
        assert.truthy(res.body:find('<a href="/">', 1, true))
        assert.truthy(res.body:find("<style>", 1, true))
    end)
end)

describe("apps/chat's long-poll page", function()
    it("links the WebSocket page", function()
        local client = test.client(apps .. "chat")
        local res = client:get("/")
        client:close()
        assert.are.equal(200, res.status)
        assert.truthy(res.body:find('href="/static/ws.html"', 1, true))
    end)
end)
