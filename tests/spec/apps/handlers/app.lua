-- The spec app for docs/reference.md, Handlers: what a function returns, class
-- dispatch, errors and aborts. Driven in-process by tests/spec/handler_spec.lua.
local lubeck = require "lubeck"
local core = require "lubeck.core"
local Request = require "lubeck.request"

local app = lubeck.app{ name = "handlers" }

-- The pipeline entry as the host calls it (host.c, dispatch): the arguments
-- of every call are recorded for handler_spec.lua, which compares them with
-- what docs/architecture.md ("The seam") says they mean. The loader asks
-- pipeline.entry for the app's entry after running this file, so the wrapper
-- sees every request.
local entry_calls = {}
local pipeline = require "lubeck.pipeline"
local make_entry = pipeline.entry
function pipeline.entry(the_app)
    local entry = make_entry(the_app)
    local shape = debug.getinfo(entry, "u")
    local function shown(v)
        if v == nil then return "nil" end
        return v
    end
    return function(...)
        local handle, method_bit, has_body, route, n, c1, c2, c3, c4, rest = ...
        local rest_shown = type(rest)
        if type(rest) == "table" then
            rest_shown = {}
            for i = 1, n do rest_shown[i] = shown(rest[i]) end
        end
        entry_calls[#entry_calls + 1] = {
            nargs = select("#", ...), nparams = shape.nparams, vararg = shape.isvararg,
            handle = type(handle), handle_path = Request.new(handle, method_bit, has_body).path,
            method_bit = method_bit, has_body = has_body,
            route = the_app.routes[route] and the_app.routes[route].pattern or route,
            n = n, c = { shown(c1), shown(c2), shown(c3), shown(c4) }, rest = rest_shown,
        }
        return entry(...)
    end
end
-- The calls before this request's own, which is dropped.
app:get("/entry/calls", function()
    local seen = entry_calls
    entry_calls = {}
    seen[#seen] = nil
    return seen
end)
app:get("/entry/method-bits", function()
    local bits = {}
    for _, m in ipairs(require("lubeck.methods").list) do bits[m] = core.route.method_bit(m) end
    bits.BREW = core.route.method_bit("BREW")   -- a method lubeck has no name for
    return bits
end)
app:route("/entry/any", function() return "" end)

local counters = { on_finish = 0, prepared = 0 }
app:get("/counters", function() return counters end)

-- Function handlers: the returned value is the response -----------------------

app:get("/fn/string", function() return "<p>hi</p>" end)
app:get("/fn/table", function() return { a = 1, list = { "x", "y" } } end)
app:get("/fn/status-body-headers", function()
    return 201, "made", { ["X-Made"] = "yes", ["Content-Type"] = "text/plain" }
end)
app:get("/fn/status-table", function() return 422, { error = "bad" } end)
app:get("/fn/status-only", function() return 404 end)
app:get("/fn/nil", function() end)
app:get("/fn/number-string", function() return 500, "custom" end)
app:get("/fn/capture/:name", function(req, name) return { name = name, params = req.params } end)
app:route("^/fn/re/(\\d+)-(\\d+)$", function(req, a, b) return { sum = tonumber(a) + tonumber(b) } end)
app:post("/fn/post-only", function(req) return "posted " .. req.body end)
-- Captures reach the handler exactly: as many values as groups, an optional
-- group that did not match as nil, more than four as well as few.
local function counted(req, ...)
    local n, values = select("#", ...), {}
    for i = 1, n do values[i] = (select(i, ...)) or "nil" end
    return { n = n, values = values, params = req.params }
end
app:route("^/fn/none$", counted)
app:route("^/fn/one/(\\w)$", counted)
app:route("^/fn/three/(\\w)(\\w)(\\w)$", counted)
app:route("^/fn/four/(\\w)(\\w)(\\w)(\\w)$", counted)
app:route("^/fn/six/(\\w)(\\w)(\\w)(\\w)(\\w)(?<last>\\w)$", counted)
app:route("^/fn/optional/(\\w+)(?:-(\\d+))?$", counted)
local Counted = lubeck.Handler:extend()
function Counted:get(...) return counted(self.req, ...) end
app:route("^/class/five/(\\w)(\\w)(\\w)(\\w)(\\w)$", Counted)
app:get("/fn/bigint", function() return { id = 123456789012345, tenth = 0.1 } end)

-- Errors and aborts -------------------------------------------------------------

app:get("/fn/error", function() error("kaboom secret detail") end)
app:get("/fn/error-table", function() error({ weird = true }) end)

local function deep(status, body) lubeck.abort(status, body) end
app:get("/abort/bare", function() lubeck.abort(403) end)
app:get("/abort/string", function() lubeck.abort(418, "short and stout") end)
app:get("/abort/table", function() lubeck.abort(409, { conflict = "yes" }) end)
app:get("/abort/deep", function() deep(451) end)
app:get("/abort/bad-status", function() lubeck.abort(42) end)

-- Class handlers ---------------------------------------------------------------

local Item = lubeck.Handler:extend()
function Item:get(id) return "get " .. id end
function Item:post(id) return 201, { created = id, body = self.req.body } end
function Item:put(id) return { put = id } end
function Item:patch(id) self:set_status(202); return "patched " .. id end
function Item:delete(id) self:set_status(204) end
function Item:on_finish() counters.on_finish = counters.on_finish + 1 end
app:route("/item/:id", Item)

local Reader = lubeck.Handler:extend()
function Reader:get() return "read only" end
app:route("/reader", Reader)

local WithOptions = lubeck.Handler:extend()
function WithOptions:get() return "x" end
function WithOptions:options() self:set_header("X-Custom-Options", "1"); return 200, "my options" end
app:route("/with-options", WithOptions)

local Writer = lubeck.Handler:extend()
function Writer:get()
    self:set_header("X-Writer", "w")
    self:write("part 1, ")
    self:write("part 2")
end
function Writer:post() return self:json({ posted = true }, 201) end
function Writer:put() self:redirect("/elsewhere") end
function Writer:delete() self:redirect("/moved", 301) end
function Writer:patch() self:finish("finished"); return "ignored" end
app:route("/writer", Writer)

-- prepare may end the request; the method is then skipped.
local Guarded = lubeck.Handler:extend()
function Guarded:prepare()
    counters.prepared = counters.prepared + 1
    if self:get_argument("key") ~= "open" then return self:redirect("/login") end
    self.user = "alice"
end
function Guarded:get() return "welcome " .. self.user end
function Guarded:on_finish() counters.on_finish = counters.on_finish + 1 end
app:route("/guarded", Guarded)

local Aborting = lubeck.Handler:extend()
function Aborting:prepare() if self:get_argument("in") == "prepare" then lubeck.abort(401) end end
function Aborting:get() lubeck.abort(403, "no way") end
function Aborting:post() error("class failure") end
function Aborting:put() self:write("half"); self:flush(); error("after flush") end
app:route("/aborting", Aborting)

local Api = lubeck.JSONHandler:extend()
function Api:get(what)
    if what == "missing" then lubeck.abort(404) end
    if what == "fail" then error("api failure") end
    if what == "custom" then lubeck.abort(400, { field = "name" }) end
    return { ok = what }
end
app:route("/api/:what", Api)

local Custom = lubeck.Handler:extend()
function Custom:get() lubeck.abort(402) end
function Custom:write_error(status, err)
    self:set_header("Content-Type", "text/plain")
    self:finish("custom error page " .. status)
end
app:route("/custom-error", Custom)

return app
