-- apps/hello through lubeck.test: the example of docs/testing.md.
-- Each request is the frame Mongrel2 would send, handled by the real host (C
-- parser, C router, a coroutine per request, C reply framing) inside this
-- process; no Mongrel2, no sockets. Run: busted --lua=luajit tests/spec (make test).
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

describe("apps/hello", function()
    local client
    setup(function() client = test.client(here .. "../../apps/hello") end)
    teardown(function() client:close() end)

    it("answers / with the HTML string its handler returns", function()
        local res = client:get("/")
        assert.are.equal(200, res.status)
        assert.are.equal("text/html; charset=utf-8", res.headers["Content-Type"])
        assert.are.equal("Hello from Lua", res.body)
    end)

    it("passes the :name capture to the handler and sends a table as JSON", function()
        local res = client:get("/hello/ann?x=1")
        assert.are.equal(200, res.status)
        assert.are.equal("application/json", res.headers["content-type"])
        assert.are.same({ greeting = "Hello, ann", path = "/hello/ann" }, cjson.decode(res.body))
    end)

    it("answers what no route matches with 404 and a wrong method with 405", function()
        assert.are.equal(404, client:get("/nowhere").status)
        local res = client:post("/", { form = { a = "1" } })
        assert.are.equal(405, res.status)
        assert.matches("GET", res.headers["allow"])
    end)

    it("answers HEAD like GET, without the body", function()
        local res = client:head("/")
        assert.are.equal(200, res.status)
        assert.are.equal("14", res.headers["content-length"])
        assert.are.equal("", res.body)
    end)

    it("gets the reply as Mongrel2 frames from the host", function()
        local res = client:get("/")
        assert.is_true(#res.frames >= 1)
        assert.matches("^[%w-]+ %d+:" .. res.conn_id .. ", HTTP/1%.1 200 OK\r\n", res.frames[1])
    end)
end)

describe("the lubeck.test client", function()
    -- A throwaway app that sets, reads and clears a cookie.
    local dir, client
    setup(function()
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir " .. dir) == 0)
        local f = assert(io.open(dir .. "/app.lua", "w"))
        f:write([[
            local app = require("lubeck").app{ name = "jar" }
            app:post("/login", function(req)
                return 200, "in", { ["Set-Cookie"] = "user=" .. req:arg("user") .. "; Path=/" }
            end)
            app:get("/whoami", function(req) return req:cookie("user") or "nobody" end)
            app:post("/logout", function(req)
                return 200, "out", { ["Set-Cookie"] = "user=; Path=/; Max-Age=0" }
            end)
            return app
        ]])
        f:close()
        client = test.client(dir)
    end)
    teardown(function()
        client:close()
        os.remove(dir .. "/app.lua")
        os.remove(dir)
    end)

    it("keeps the cookies the app sets and sends them back, as a browser does", function()
        assert.are.equal("nobody", client:get("/whoami").body)
        assert.are.equal(200, client:post("/login", { form = { user = "ann" } }).status)
        assert.are.equal("ann", client.cookies.user)
        assert.are.equal("ann", client:get("/whoami").body)
        client:post("/logout")
        assert.is_nil(client.cookies.user)
        assert.are.equal("nobody", client:get("/whoami").body)
    end)

    it("sends an explicit Cookie header instead of the jar", function()
        client:post("/login", { form = { user = "ann" } })
        assert.are.equal("bob", client:get("/whoami", { headers = { cookie = "user=bob" } }).body)
    end)
end)
