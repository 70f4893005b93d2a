-- The app object: options and routes. Routes are compiled into the host's C
-- router when the app is loaded; a bad pattern is reported at the line that
-- declared it.
local core = require "lubeck.core"
local handler = require "lubeck.handler"

local setmetatable, getmetatable, pairs, type, error, ipairs, tostring, format =
    setmetatable, getmetatable, pairs, type, error, ipairs, tostring, string.format
local getinfo = debug.getinfo

local App = {}
App.__index = App

local OPTIONS = {
    cookie_secret = "string", template_dir = "string", login_url = "string",
    debug = "boolean", request_timeout = "number", name = "string",
    session_store = "table", template_engine = "table", tls = "table",
}

function App.new(opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("lubeck.app{...}: options must be a table", 2) end
    local app = setmetatable({
        routes = {},
        template_dir = "templates",
        request_timeout = 60,
        debug = false,
        name = "app",
    }, App)
    for k, v in pairs(opts) do
        local want = OPTIONS[k]
        if not want then error(format("lubeck.app{...}: unknown option '%s'", tostring(k)), 2) end
        if type(v) ~= want then
            error(format("lubeck.app{...}: option '%s' must be a %s, got %s", k, want, type(v)), 2)
        end
        app[k] = v
    end
    -- Sessions are signed: an app that declares a store must have a secret.
    if app.session_store ~= nil then
        if type(app.session_store.load) ~= "function" or type(app.session_store.save) ~= "function" then
            error("lubeck.app{...}: session_store must be a store such as require(\"lubeck.session\").redis{...}", 2)
        end
        if type(app.cookie_secret) ~= "string" or app.cookie_secret == "" then
            error("lubeck.app{...}: session_store needs a cookie_secret (sessions are signed with it)", 2)
        end
    end
    -- tls = { ca = "file.pem" }: cosockets trust these CAs besides the system's.
    if app.tls and app.tls.ca ~= nil then
        local ok, err = core.tls_add_ca(tostring(app.tls.ca))
        if not ok then error("lubeck.app{...}: tls.ca: " .. err, 2) end
    end
    if app.template_engine ~= nil and type(app.template_engine.compile) ~= "function" then
        error("lubeck.app{...}: template_engine must be { compile = function(source, name) ... end }", 2)
    end
    return app
end

-- The HTML of a template in app.template_dir, for function routes:
--   app:get("/", function(req) return app:render("index.html", { name = "x" }) end)
function App:render(name, ctx)
    return require("lubeck.template").for_app(self):render(name, ctx)
end

function App.is_app(v)
    return getmetatable(v) == App
end

local function add_route(app, pattern, target, methods, level)
    if type(pattern) ~= "string" or pattern == "" then
        error("route pattern must be a non-empty string", level)
    end
    local kind
    if type(target) == "function" then
        kind = "function"
    elseif handler.is_class(target) then
        kind = "class"
    else
        error(format("route %s: the handler must be a function or a lubeck.Handler class, got %s",
            pattern, type(target)), level)
    end
    local mask = 0
    if methods ~= nil then
        if type(methods) ~= "table" then error("route methods must be a list like {\"GET\", \"POST\"}", level) end
        for _, m in ipairs(methods) do
            local bit = core.method_bit(tostring(m):upper())
            if bit == core.method_bit("?") then
                error(format("route %s: unknown method '%s'", pattern, tostring(m)), level)
            end
            mask = mask + bit
        end
    end
    local info = getinfo(level, "Sl")
    local routes = app.routes
    routes[#routes + 1] = {
        pattern = pattern, handler = target, kind = kind, mask = mask,
        where = info and format("%s:%d", info.short_src, info.currentline) or pattern,
    }
    return app
end

-- Not tail calls: a tail call drops this frame, and level 3 (the app.lua line
-- that declared the route) would then name the loader instead.
function App:route(pattern, target, methods)
    local app = add_route(self, pattern, target, methods, 3)
    return app
end

for _, verb in ipairs({ "get", "post", "put", "patch", "delete" }) do
    local methods = { verb:upper() }
    App[verb] = function(self, pattern, target)
        local app = add_route(self, pattern, target, methods, 3)
        return app
    end
end

-- REST routes for a model (lubeck.resource): GET/POST path, GET/PUT/PATCH/DELETE
-- path/:id; store defaults to an in-memory one.
function App:resource(path, m, store)
    local app = require("lubeck.resource").add(self, path, m, store, 3)
    return app
end

-- Mongrel2 broadcast: sends data as is (no HTTP head) to each connection of
-- the Mongrel2 server named by sender, 128 connections a frame.
function App:deliver(sender, conn_ids, data)
    if type(conn_ids) ~= "table" then conn_ids = { conn_ids } end
    return core.deliver(sender, conn_ids, data)
end

-- Hands every route to the C router, in order (the first match wins).
function App:_compile()
    for i, r in ipairs(self.routes) do
        local index, names = core.route_add(r.pattern, r.mask)
        if not index then error(r.where .. ": " .. names, 0) end
        if index ~= i then error("routes were already compiled for another app", 0) end
        r.names = names            -- a name per capture, false for a positional one
        r.named = false
        for _, name in ipairs(names) do r.named = r.named or name ~= false end
    end
end

return App
