-- The end-to-end test app for docs/reference.md (Routes, Handlers, Requests): one route (or a few) per row of the
-- contract. tests/e2e/test_core.py and test_frames.py drive it.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "core" }

-- Counters the tests read back through /counters.
local counters = { finished = 0, guarded_get = 0, included = 0 }

app:get("/", function(req) return "core app" end)

app:get("/counters", function(req) return counters end)

-- §3 Routes -------------------------------------------------------------------

local function show(req, ...)
    return { args = { ... }, n = select("#", ...), params = req.params }
end

app:route("^/re/(\\d+)/(\\w+)$", show)
app:route("^/named/(?<year>\\d{4})/(?<slug>[a-z-]+)$", show)
app:route("^/mixed/(\\d+)/(?<name>\\w+)$", show)
app:route("^/opt(?:/(\\d+))?/(?<word>[a-z]+)$", show)  -- a group that may not take part
app:route("^/prefix/(\\w+)", show)                -- no '$': matches from the start only
app:get("/users/:id", show)
app:get("/users/:id/posts/:post", show)
app:get("/files/*path", show)

app:get("/first/:x", function(req, x) return "first:" .. x end)
app:get("/first/fixed", function(req) return "second" end)   -- never reached

app:get("/same", function(req) return "get same" end)
app:post("/same", function(req) return "post same:" .. req.body end)

app:get("/only-get", function(req) return "only get" end)
app:put("/multi", function(req) return "put multi" end)
app:delete("/multi", function(req) return "delete multi" end)

app:route("/both", function(req) return "both:" .. req.method end, { "GET", "POST" })
app:route("/any", function(req) return "any:" .. req.method end)

-- §4 What a function handler returns -----------------------------------------

app:get("/ret/string", function(req) return "a string" end)
app:get("/ret/table", function(req) return { answer = 42, list = { 1, 2, 3 }, nested = { ok = true } } end)
app:get("/ret/status-body-headers", function(req)
    return 201, "created it", { ["X-Thing"] = "yes", ["Content-Type"] = "text/plain" }
end)
app:get("/ret/status-table", function(req) return 202, { queued = true } end)
app:get("/ret/status-table-type", function(req)
    return 422, { title = "bad" }, { ["Content-Type"] = "application/problem+json" }
end)
app:get("/ret/status-only", function(req) return 404 end)
app:get("/ret/nil", function(req) end)
app:get("/ret/empty-string", function(req) return "" end)

-- §4 Class handlers --------------------------------------------------------------

local Thing = lubeck.Handler:extend()
function Thing:get(id) return "get " .. id end
function Thing:post(id) return 201, "post " .. id .. ":" .. self.req.body end
function Thing:put(id) return { method = "put", id = id, body = self.req.body } end
function Thing:patch(id) return "patch " .. id end
function Thing:delete(id) self:set_status(204) end
app:route("/thing/:id", Thing)

local GetOnly = lubeck.Handler:extend()
function GetOnly:get() return "class get only" end
app:route("/class-get-only", GetOnly)

local PostOnly = lubeck.Handler:extend()
function PostOnly:post() return "class post only" end
app:route("/class-post-only", PostOnly)

-- prepare() may end the request; the method is then skipped. on_finish runs
-- after every response of the class.
local Guarded = lubeck.Handler:extend()
function Guarded:prepare()
    if self:get_argument("token") ~= "s3cret" then
        return self:redirect("/login?next=" .. self.req.path)
    end
end
function Guarded:get()
    counters.guarded_get = counters.guarded_get + 1
    return "the secret"
end
function Guarded:on_finish()
    counters.finished = counters.finished + 1
end
app:route("/guarded", Guarded)

-- Mixins: copied in, in order; included(cls) once per class.
local Greeter = {
    included = function(cls)
        counters.included = counters.included + 1
        cls.greeting = "included into a class"
    end,
    greet = function(self) return "greet from Greeter" end,
    who = function(self) return "Greeter" end,
}
local Shouter = {
    who = function(self) return "Shouter" end,   -- later mixins win
}
local MixedA = lubeck.Handler:extend(Greeter, Shouter)
function MixedA:get()
    return { greet = self:greet(), who = self:who(), greeting = self.greeting,
             included = counters.included }
end
local MixedB = lubeck.Handler:extend(Greeter)
function MixedB:get() return { who = self:who(), included = counters.included } end
app:route("/mixin/a", MixedA)
app:route("/mixin/b", MixedB)

local Api = lubeck.JSONHandler:extend()
function Api:get(id)
    if id == "missing" then lubeck.abort(404) end
    if id == "forbidden" then lubeck.abort(403) end
    if id == "boom" then error("api exploded") end
    if id == "json" then return self:json({ id = id, made = "by json()" }, 201) end
    return { id = id }
end
app:route("/api/:id", Api)

-- lubeck.abort ---------------------------------------------------------------

local function check_access(level)
    if level == "deep" then lubeck.abort(401) end
end
local function load_thing(level)
    check_access(level)   -- two calls below the handler
    return "not reached"
end

app:get("/abort/plain", function(req) lubeck.abort(403) end)
app:get("/abort/string", function(req) lubeck.abort(409, "conflict: <raw>") end)
app:get("/abort/table", function(req) lubeck.abort(422, { why = "bad input", fields = { "a" } }) end)
app:get("/abort/deep", function(req) return load_thing("deep") end)

local AbortClass = lubeck.Handler:extend()
function AbortClass:get()
    self:set_header("X-Before-Abort", "kept")
    lubeck.abort(418, "short and stout")
end
app:route("/abort/class", AbortClass)

-- Errors ------------------------------------------------------------------------

-- write_error(status, err) shapes every error page of a class.
local Custom = lubeck.Handler:extend()
function Custom:write_error(status, err)
    self:set_header("X-Custom-Error", tostring(status))
    self:set_header("Content-Type", "text/plain")
    self:finish("custom page for " .. status)
end
function Custom:get(what)
    if what == "abort" then lubeck.abort(404) end
    if what == "boom" then error("custom boom") end
    return "fine"
end
app:route("/custom/:what", Custom)

local BrokenErrors = lubeck.Handler:extend()
function BrokenErrors:write_error(status, err) error("write_error is broken too") end
function BrokenErrors:get() error("first failure") end
app:route("/broken-errors", BrokenErrors)

local function explode() error("kaboom: secret internals") end
app:get("/boom", function(req) explode() end)

-- flush() streams (chunked); an error after it closes the connection.
local Stream = lubeck.Handler:extend()
function Stream:get(what)
    self:set_header("Content-Type", "text/plain")
    self:write("first chunk;")
    self:flush()
    self:write("second chunk;")
    self:flush()
    if what == "boom" then explode() end
    self:write("last")
end
app:route("/stream/:what", Stream)

local BoomClass = lubeck.Handler:extend()
function BoomClass:get()
    self:set_header("X-Prepared", "1")
    self:write("half a page")
    error({ "a table error" })
end
app:route("/boom/class", BoomClass)

-- Headers with CR or LF are refused (response splitting).
app:get("/bad-header/function", function(req)
    return 200, "never sent", { ["X-Evil"] = "a\r\nInjected: yes" }
end)
local BadHeader = lubeck.Handler:extend()
function BadHeader:get()
    self:set_header("X-Split", "one\nInjected: two")
    return "never sent either"
end
app:route("/bad-header/class", BadHeader)
app:get("/bad-header/name", function(req)
    return 200, "never sent", { ["X-Name\r\nInjected: yes"] = "v" }
end)
-- Past set_header's check (straight into the header list): the host's own check
-- must still refuse it.
local BadHeaderRaw = lubeck.Handler:extend()
function BadHeaderRaw:get()
    self:set_header("X-Fine", "1")   -- the response's own header list from here on
    local h = self._headers
    h[#h + 1] = "X-Raw"
    h[#h + 1] = "v\r\nInjected: raw"
    return "never sent, raw"
end
app:route("/bad-header/raw", BadHeaderRaw)
local BadHeaderJson = lubeck.Handler:extend()
function BadHeaderJson:get()
    self:add_header("X-Also-Bad", "x\r\n\r\n<html>smuggled</html>")
    return self:json({ no = "never" })
end
app:route("/bad-header/json", BadHeaderJson)

-- The response calls on self ------------------------------------------------------

local Resp = lubeck.Handler:extend()
function Resp:get(what)
    if what == "status-headers" then
        self:set_status(202)
        self:set_header("X-One", "1")
        self:set_header("X-One", "uno")          -- replaces
        self:add_header("X-Many", "a")
        self:add_header("X-Many", "b")
        self:set_header("Content-Type", "text/plain; charset=utf-8")
        self:write("part one, ")
        self:write("part two")
        self:finish()
        return "ignored: the response is finished"
    elseif what == "finish-chunk" then
        self:write("a")
        return self:finish("b")
    elseif what == "json" then
        return self:json({ made = "by json", list = { "x" } }, 201)
    elseif what == "json-bare" then
        self:json({ bare = true })                -- no return: same as returning it
    elseif what == "redirect" then
        return self:redirect("/somewhere?x=1")
    elseif what == "redirect-301" then
        self:redirect("https://example.test/moved", 301)
    elseif what == "cookies" then
        self:set_cookie("plain", "v1")
        self:set_cookie("full", "v2", {
            path = "/p", domain = "example.test", max_age = 3600, expires = 86400,
            secure = true, http_only = true, same_site = "Strict",
        })
        self:clear_cookie("gone")
        return "cookies set"
    elseif what == "status-then-return" then
        self:set_status(201)
        self:set_header("X-From-Self", "yes")
        return { returned = true }
    elseif what == "write-only" then
        self:write("written, ")
        self:write("not returned")
        return nil                                -- nil after a write: still a 200
    elseif what == "self" then
        return { app = self.app.name, path = self.req.path, params = self.params }
    elseif what == "args" then
        return {
            name = self:get_argument("name"),
            missing = self:get_argument("missing") == nil,
            default = self:get_argument("missing", "fallback"),
            many = self:get_arguments("many"),
            none = #self:get_arguments("none"),
            params = self.params,
        }
    end
    lubeck.abort(404)
end
Resp.post = Resp.get
app:route("/resp/:what", Resp)

-- §5 Requests ----------------------------------------------------------------------

local function describe(req)
    local headers = {}
    for k, v in pairs(req.headers) do headers[k] = v end
    return {
        method = req.method, path = req.path, query = req.query, uri = req.uri,
        version = req.version, body = req.body, remote_addr = req.remote_addr,
        conn_id = req.conn_id, sender = req.sender, params = req.params,
        headers = headers,
        x_custom = { req.headers["X-Custom"] or false, req.headers["x-custom"] or false,
                     req.headers["X-CUSTOM"] or false },
        x_rep_list = req.headers["X-Rep"] or false,
        x_rep_joined = req:header("X-Rep") or false,
        missing_header = req:header("X-Not-There") == nil and req.headers["x-not-there"] == nil,
        m2_method = req.headers["METHOD"] or false,   -- Mongrel2's own keys stay hidden
    }
end
app:route("/req/echo", describe)
app:route("/req/echo/:a/*rest", describe)

app:route("/req/args", function(req)
    return {
        a = req:arg("a") or false,
        b = req:arg("b") or false,
        dflt = req:arg("missing", "dflt"),
        missing = req:arg("missing") == nil,
        args = req:args(),
        list = req:arg_list("a"),
        empty_list = #req:arg_list("missing"),
        space = req:arg("sp") or false,
    }
end)

app:post("/req/json", function(req)
    local value, err = req:json()
    return { ok = value ~= nil, value = value or false, err = err or false }
end)

-- One header's value, byte for byte.
app:get("/req/header/:name", function(req, name)
    local value = req:header(name)
    if value == nil then return 404, "no such header" end
    return 200, value, { ["Content-Type"] = "application/octet-stream" }
end)

app:post("/req/form", function(req)
    local files = {}
    for name, f in pairs(req.files) do
        files[name] = { filename = f.filename, content_type = f.content_type, body = f.body }
    end
    return { args = req:args(), list = req:arg_list("a"), files = files }
end)

app:get("/req/cookie", function(req)
    return { sid = req:cookie("sid") or false, other = req:cookie("other") or false,
             missing = req:cookie("missing") == nil }
end)

-- Byte-exact echo of the body.
app:route("/echo", function(req)
    return 200, req.body, { ["Content-Type"] = "application/octet-stream",
                            ["X-Body-Length"] = tostring(#req.body) }
end, { "POST", "PUT" })

-- Concurrency: each request sleeps, so many are in flight at once.
app:get("/slow/:n", function(req, n)
    lubeck.sleep(0.05)
    return { n = n, conn_id = req.conn_id }
end)

return app
