-- docs/reference.md, Handlers, in-process: what a handler returns becomes the response; class
-- dispatch, prepare/on_finish, HEAD/OPTIONS/405, JSONHandler, abort, 500.
-- App: tests/spec/apps/handlers.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local APP = here .. "apps/handlers"

local HTML = "text/html; charset=utf-8"
local JSON = "application/json"

describe("a function handler's return value", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    it("string → 200 text/html", function()
        local r = c:get("/fn/string")
        assert.are.equal(200, r.status)
        assert.are.equal(HTML, r.headers["Content-Type"])
        assert.are.equal("9", r.headers["Content-Length"])
        assert.are.equal("<p>hi</p>", r.body)
    end)

    it("gets every capture, in order, however many the route has", function()
        local six = cjson.decode(c:get("/fn/six/abcdef").body)
        assert.are.same({ n = 6, values = { "a", "b", "c", "d", "e", "f" }, params = { last = "f" } }, six)
        local five = cjson.decode(c:get("/class/five/vwxyz").body)
        assert.are.same({ "v", "w", "x", "y", "z" }, five.values)
        assert.are.equal(5, five.n)
        for path, values in pairs({ ["/fn/none"] = {}, ["/fn/one/a"] = { "a" },
                                    ["/fn/three/abc"] = { "a", "b", "c" }, ["/fn/four/abcd"] = { "a", "b", "c", "d" } }) do
            assert.are.same({ n = #values, values = values, params = {} }, cjson.decode(c:get(path).body), path)
        end
    end)

    it("gets an optional group that did not match as nil, still counted", function()
        assert.are.same({ n = 2, values = { "abc", "nil" }, params = {} },
            cjson.decode(c:get("/fn/optional/abc").body))
        assert.are.same({ n = 2, values = { "abc", "7" }, params = {} },
            cjson.decode(c:get("/fn/optional/abc-7").body))
    end)

    it("table → 200 application/json", function()
        local r = c:get("/fn/table")
        assert.are.equal(200, r.status)
        assert.are.equal(JSON, r.headers["content-type"])
        assert.are.same({ a = 1, list = { "x", "y" } }, cjson.decode(r.body))
    end)

    it("number, body, headers → that status, body and headers", function()
        local r = c:get("/fn/status-body-headers")
        assert.are.equal(201, r.status)
        assert.are.equal("made", r.body)
        assert.are.equal("yes", r.headers["X-Made"])
        assert.are.equal("text/plain", r.headers["Content-Type"])
    end)

    it("number, table → that status with JSON", function()
        local r = c:get("/fn/status-table")
        assert.are.equal(422, r.status)
        assert.are.equal(JSON, r.headers["Content-Type"])
        assert.are.same({ error = "bad" }, cjson.decode(r.body))
        local r2 = c:get("/fn/number-string")
        assert.are.equal(500, r2.status)
        assert.are.equal("custom", r2.body)
    end)

    it("a bare number → that status with an empty body", function()
        local r = c:get("/fn/status-only")
        assert.are.equal(404, r.status)
        assert.are.equal("", r.body)
        assert.are.equal("0", r.headers["Content-Length"])
    end)

    it("nil → 204 without a body", function()
        local r = c:get("/fn/nil")
        assert.are.equal(204, r.status)
        assert.are.equal("", r.body)
        assert.is_nil(r.headers["Content-Length"])
    end)

    it("table → JSON that keeps every digit of its numbers", function()
        -- Regression, once a bug in lua/lubeck/response.lua: lua-cjson 2.1.0 (Debian) writes at most
        -- 14 significant digits, so { id = 123456789012345 } goes out as
        -- {"id":1.2345678901234e+14}: ids, microsecond times and counters above
        -- 10^14 are silently changed.
        local body = c:get("/fn/bigint").body
        assert.matches('"id":123456789012345[,}]', body)
        assert.are.equal(0.1, cjson.decode(body).tenth)
    end)

    it("receives captures as arguments and in req.params", function()
        assert.are.same({ name = "bob", params = { name = "bob" } }, cjson.decode(c:get("/fn/capture/bob").body))
        assert.are.same({ sum = 5 }, cjson.decode(c:get("/fn/re/2-3").body))
    end)
end)

-- host.c (dispatch) calls pipeline.lua's entry with ten arguments that the two
-- files agree on only by position; docs/architecture.md ("The seam") says what
-- each means. The app records every call's arguments as the host passed them.
describe("the pipeline entry, as the host calls it", function()
    local c, bits
    setup(function()
        c = test.client(APP)
        bits = cjson.decode(c:get("/entry/method-bits").body)
        c:get("/entry/calls")   -- start with an empty record
    end)
    teardown(function() c:close() end)

    -- The arguments of the one entry call that answered this request.
    local function entry_args(method, path, opts)
        c:request(method, path, opts)
        local calls = cjson.decode(c:get("/entry/calls").body)
        assert.are.equal(1, #calls, "entry calls for " .. method .. " " .. path)
        return calls[1]
    end

    local NONE = { "nil", "nil", "nil", "nil" }

    it("takes exactly ten, and is given ten every time", function()
        local args = entry_args("GET", "/fn/none")
        assert.are.equal(10, args.nparams)
        assert.is_false(args.vararg)
        assert.are.equal(10, args.nargs)
        assert.are.equal(10, entry_args("GET", "/nowhere").nargs)
        assert.are.equal(10, entry_args("GET", "/fn/post-only").nargs)
        assert.are.equal(10, entry_args("GET", "/fn/six/abcdef").nargs)
    end)

    it("handle: the number the request is read through", function()
        local args = entry_args("GET", "/fn/one/z?q=1")
        assert.are.equal("number", args.handle)
        assert.are.equal("/fn/one/z", args.handle_path)
    end)

    it("method_bit: core.route.method_bit of the request's method, a name lubeck lacks included", function()
        for _, m in ipairs({ "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW" }) do
            assert.are.equal(bits[m], entry_args(m, "/entry/any").method_bit, m)
        end
        local seen = {}
        for m, bit in pairs(bits) do
            assert.is_nil(seen[bit], m .. " shares a bit with " .. tostring(seen[bit]))
            seen[bit] = m
        end
    end)

    it("has_body: whether the request carries a body", function()
        assert.is_true(entry_args("POST", "/entry/any", { body = "x" }).has_body)
        assert.is_false(entry_args("POST", "/entry/any", { body = "" }).has_body)
        assert.is_false(entry_args("GET", "/entry/any").has_body)
    end)

    it("route, n, c1..c4, rest: the matched route and its 0 to 6 captures", function()
        local cases = {
            { "/fn/none", "^/fn/none$", 0, NONE, "nil" },
            { "/fn/one/a", "^/fn/one/(\\w)$", 1, { "a", "nil", "nil", "nil" }, "nil" },
            { "/fn/optional/abc", "^/fn/optional/(\\w+)(?:-(\\d+))?$", 2, { "abc", "nil", "nil", "nil" }, "nil" },
            { "/fn/three/abc", "^/fn/three/(\\w)(\\w)(\\w)$", 3, { "a", "b", "c", "nil" }, "nil" },
            { "/fn/four/abcd", "^/fn/four/(\\w)(\\w)(\\w)(\\w)$", 4, { "a", "b", "c", "d" }, "nil" },
            { "/class/five/vwxyz", "^/class/five/(\\w)(\\w)(\\w)(\\w)(\\w)$", 5, NONE,
              { "v", "w", "x", "y", "z" } },
            { "/fn/six/abcdef", "^/fn/six/(\\w)(\\w)(\\w)(\\w)(\\w)(?<last>\\w)$", 6, NONE,
              { "a", "b", "c", "d", "e", "f" } },
        }
        for _, case in ipairs(cases) do
            local path, pattern, n, slots, rest = case[1], case[2], case[3], case[4], case[5]
            local args = entry_args("GET", path)
            assert.are.same({ route = pattern, n = n, c = slots, rest = rest },
                { route = args.route, n = args.n, c = args.c, rest = args.rest }, path)
        end
    end)

    it("route 0 for a path no route matches, with no captures", function()
        local args = entry_args("GET", "/nowhere")
        assert.are.same({ route = 0, n = 0, c = NONE, rest = "nil" },
            { route = args.route, n = args.n, c = args.c, rest = args.rest })
    end)

    it("route -1 for a method the path does not allow, with n = 1 and c1 the allowed mask", function()
        local args = entry_args("GET", "/fn/post-only")
        assert.are.same({ route = -1, n = 1, c = { bits.POST, "nil", "nil", "nil" }, rest = "nil" },
            { route = args.route, n = args.n, c = args.c, rest = args.rest })
    end)
end)

describe("routing outcomes", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    it("no route → 404 page", function()
        local r = c:get("/nowhere")
        assert.are.equal(404, r.status)
        assert.matches("404 Not Found", r.body, 1, true)
    end)

    it("route without the method → 405 with Allow", function()
        local r = c:get("/fn/post-only")
        assert.are.equal(405, r.status)
        assert.are.equal("POST, OPTIONS", r.headers["Allow"])
        assert.are.equal("posted x", c:post("/fn/post-only", { body = "x" }).body)
    end)

    it("OPTIONS → 204 with Allow; HEAD of a GET route drops the body", function()
        local o = c:options("/fn/post-only")
        assert.are.equal(204, o.status)
        assert.are.equal("POST, OPTIONS", o.headers["Allow"])
        local h = c:head("/fn/string")
        assert.are.equal(200, h.status)
        assert.are.equal("", h.body)
        assert.are.equal("9", h.headers["Content-Length"])
    end)
end)

describe("a class handler", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    it("dispatches on the method, with the same return conventions", function()
        assert.are.equal("get 7", c:get("/item/7").body)
        local p = c:post("/item/7", { body = "b" })
        assert.are.equal(201, p.status)
        assert.are.same({ created = "7", body = "b" }, cjson.decode(p.body))
        assert.are.same({ put = "7" }, cjson.decode(c:put("/item/7").body))
        local pa = c:patch("/item/7")
        assert.are.equal(202, pa.status)          -- set_status applies to the returned string
        assert.are.equal("patched 7", pa.body)
        assert.are.equal(204, c:delete("/item/7").status)
    end)

    it("answers HEAD with get's head and no body", function()
        local r = c:head("/item/7")
        assert.are.equal(200, r.status)
        assert.are.equal("", r.body)
        assert.are.equal("5", r.headers["Content-Length"])
    end)

    it("answers OPTIONS 204 with Allow listing what it implements, unless it has options()", function()
        local r = c:options("/item/7")
        assert.are.equal(204, r.status)
        assert.are.equal("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", r.headers["Allow"])
        assert.are.equal("GET, HEAD, OPTIONS", c:options("/reader").headers["Allow"])
        local own = c:options("/with-options")
        assert.are.equal(200, own.status)
        assert.are.equal("my options", own.body)
        assert.are.equal("1", own.headers["X-Custom-Options"])
    end)

    it("answers a method it lacks 405 with Allow", function()
        local r = c:post("/reader")
        assert.are.equal(405, r.status)
        assert.are.equal("GET, HEAD, OPTIONS", r.headers["Allow"])
        assert.are.equal(405, c:delete("/aborting").status)
    end)

    it("sends what was written when the method returns nil", function()
        local r = c:get("/writer")
        assert.are.equal(200, r.status)
        assert.are.equal("part 1, part 2", r.body)
        assert.are.equal("w", r.headers["X-Writer"])
        assert.are.equal(HTML, r.headers["Content-Type"])
    end)

    it("completes the response with json, redirect and finish", function()
        local j = c:post("/writer")
        assert.are.equal(201, j.status)
        assert.are.same({ posted = true }, cjson.decode(j.body))
        local r = c:put("/writer")
        assert.are.equal(302, r.status)
        assert.are.equal("/elsewhere", r.headers["Location"])
        local m = c:delete("/writer")
        assert.are.equal(301, m.status)
        assert.are.equal("/moved", m.headers["Location"])
        local f = c:patch("/writer")
        assert.are.equal("finished", f.body)     -- what the method returns after finish() is ignored
    end)

    it("skips the method when prepare ends the request, and runs on_finish every time", function()
        local before = cjson.decode(c:get("/counters").body)
        local r = c:get("/guarded")
        assert.are.equal(302, r.status)
        assert.are.equal("/login", r.headers["Location"])
        assert.are.equal("welcome alice", c:get("/guarded?key=open").body)
        c:get("/item/1")
        local after = cjson.decode(c:get("/counters").body)
        assert.are.equal(before.prepared + 2, after.prepared)
        assert.are.equal(before.on_finish + 3, after.on_finish)
    end)

    it("uses write_error for every error page when the class overrides it", function()
        local r = c:get("/custom-error")
        assert.are.equal(402, r.status)
        assert.are.equal("custom error page 402", r.body)
        assert.are.equal("text/plain", r.headers["Content-Type"])
    end)
end)

describe("lubeck.JSONHandler", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    it("answers errors as JSON", function()
        local nf = c:get("/api/missing")
        assert.are.equal(404, nf.status)
        assert.are.equal(JSON, nf.headers["Content-Type"])
        assert.are.same({ status = 404, error = "not found" }, cjson.decode(nf.body))
        local na = c:post("/api/x")
        assert.are.equal(405, na.status)
        assert.are.same({ status = 405, error = "method not allowed" }, cjson.decode(na.body))
        local fail = c:get("/api/fail")
        assert.are.equal(500, fail.status)
        assert.are.same({ status = 500, error = "internal server error" }, cjson.decode(fail.body))
    end)

    it("sends an abort's table body as is", function()
        local r = c:get("/api/custom")
        assert.are.equal(400, r.status)
        assert.are.same({ field = "name" }, cjson.decode(r.body))
        assert.are.same({ ok = "x" }, cjson.decode(c:get("/api/x").body))
    end)
end)

describe("lubeck.abort", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    it("without a body gives a short page with the reason phrase", function()
        local r = c:get("/abort/bare")
        assert.are.equal(403, r.status)
        assert.are.equal(HTML, r.headers["Content-Type"])
        assert.matches("403 Forbidden", r.body, 1, true)
    end)

    it("sends a string body as is and a table as JSON", function()
        local s = c:get("/abort/string")
        assert.are.equal(418, s.status)
        assert.are.equal("short and stout", s.body)
        local t = c:get("/abort/table")
        assert.are.equal(409, t.status)
        assert.are.equal(JSON, t.headers["Content-Type"])
        assert.are.same({ conflict = "yes" }, cjson.decode(t.body))
    end)

    it("works from any depth below the handler and from prepare", function()
        local r = c:get("/abort/deep")
        assert.are.equal(451, r.status)
        assert.matches("Unavailable For Legal Reasons", r.body, 1, true)
        assert.are.equal(401, c:get("/aborting?in=prepare").status)
        local m = c:get("/aborting")
        assert.are.equal(403, m.status)
        assert.are.equal("no way", m.body)
    end)

    it("with a status that is not one is a 500", function()
        assert.are.equal(500, c:get("/abort/bad-status").status)
    end)
end)

describe("an error in a handler", function()
    it("is a 500 without details when debug is off", function()
        local c = test.client(APP)
        for _, r in ipairs({ c:get("/fn/error"), c:get("/fn/error-table"), c:post("/aborting") }) do
            assert.are.equal(500, r.status)
            assert.matches("500 Internal Server Error", r.body, 1, true)
            assert.is_nil(r.body:find("kaboom", 1, true))
            assert.is_nil(r.body:find("traceback", 1, true))
        end
        c:close()
    end)

    it("carries the traceback in the body when debug is on", function()
        local c = test.client(APP, { debug = true })
        local r = c:get("/fn/error")
        assert.are.equal(500, r.status)
        assert.matches("kaboom secret detail", r.body, 1, true)
        assert.matches("stack traceback", r.body, 1, true)
        local j = cjson.decode(c:get("/api/fail").body)
        assert.are.equal(500, j.status)
        assert.matches("api failure", j.traceback, 1, true)
        c:close()
    end)

    it("after flush closes the connection instead of sending a second head", function()
        local c = test.client(APP)
        local r = c:put("/aborting")
        assert.are.equal(200, r.status)
        assert.is_true(r.closed)
        local _, heads = r.raw:gsub("HTTP/1%.1 %d%d%d", "")
        assert.are.equal(1, heads)
        c:close()
    end)
end)
