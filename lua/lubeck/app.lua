-- The app object: options and routes. Routes are compiled into the host's C
-- router when the app is loaded; a bad pattern is reported at the line that
-- declared it.
local core = require "lubeck.core"
local handler = require "lubeck.handler"
local http_methods = require "lubeck.methods"

local setmetatable, getmetatable, pairs, type, error, ipairs, tostring, format =
    setmetatable, getmetatable, pairs, type, error, ipairs, tostring, string.format
local sub, gsub, find = string.sub, string.gsub, string.find
local band = require("bit").band
local getinfo = debug.getinfo

local App = {}
App.__index = App

local OPTIONS = {
    cookie_secret = "string", template_dir = "string", login_url = "string",
    debug = "boolean", request_timeout = "number", name = "string",
    session_store = "table", template_engine = "table", redis = "string", tls = "table",
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
    -- Channels cross hosts through this Redis; `--redis` on the command line wins,
    -- so app.redis is the url in effect (or nil: channels stay on this host).
    local redis_url, redis_err = core.channel.redis(app.redis)
    if redis_err then error("lubeck.app{...}: option 'redis': " .. redis_err, 2) end
    app.redis = redis_url
    -- tls = { ca = "file.pem" }: cosockets trust these CAs besides the system's.
    if app.tls and app.tls.ca ~= nil then
        local ok, err = core.tls.add_ca(tostring(app.tls.ca))
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

local function add_route(app, verb, pattern, target, methods, level)
    if not App.is_app(app) then
        -- app.get("/", fn): the pattern arrived as self and the handler as the pattern
        error(format("app.%s(...) needs a colon: write app:%s(%s, ...)", verb, verb,
            type(app) == "string" and format("%q", app) or "pattern"), level)
    end
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
            local bit = core.route.method_bit(tostring(m):upper())
            if bit == core.route.method_bit("?") then
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
    local app = add_route(self, "route", pattern, target, methods, 3)
    return app
end

-- app:get, app:post, ...: a route for one method (OPTIONS is answered for
-- every route, so it has no helper of its own).
for _, verb in ipairs(http_methods.class_methods) do
    if verb ~= "options" then
        local only = { verb:upper() }
        App[verb] = function(self, pattern, target)
            local app = add_route(self, verb, pattern, target, only, 3)
            return app
        end
    end
end

-- REST routes for a model (lubeck.resource): GET/POST path, GET/PUT/PATCH/DELETE
-- path/:id; store defaults to an in-memory one.
function App:resource(path, m, store)
    if not App.is_app(self) then
        error("app.resource(...) needs a colon: write app:resource(path, Model)", 2)
    end
    local app = require("lubeck.resource").add(self, path, m, store, 3)
    return app
end

-- Mongrel2 broadcast: sends data as is (no HTTP head) to each connection of
-- the Mongrel2 server named by sender, 128 connections a frame.
function App:deliver(sender, conn_ids, data)
    if type(conn_ids) ~= "table" then conn_ids = { conn_ids } end
    return core.deliver(sender, conn_ids, data)
end

-- A path template with its names left out ("/users/:id" → "/users/:"), and a
-- Lua pattern matching the paths it takes; nil for a regular expression.
local function template_shape(pattern)
    if sub(pattern, 1, 1) == "^" then return nil end
    local shape = gsub(gsub(pattern, ":[%w_]+", ":"), "%*[%w_]*", "*")
    local lua = "^" .. gsub(gsub(gsub(shape, "[%%%.%-%+%?%[%]%(%)%$%^]", "%%%0"), ":", "[^/]+"), "%*", ".*") .. "$"
    return shape, lua
end

local function methods_covered(earlier, later)
    return earlier == 0 or (later ~= 0 and band(earlier, later) == later)
end

-- Routes an earlier route always wins over (the first match wins): the same
-- pattern, or a fixed path an earlier template takes, for methods the earlier
-- one covers. One "file:line: ..." warning each.
function App:_shadowed()
    local warnings = {}
    for i, r in ipairs(self.routes) do
        if r.internal then break end
        local shape = template_shape(r.pattern)
        local fixed = shape and not find(shape, "[:*]")
        for j = 1, i - 1 do
            local e = self.routes[j]
            if methods_covered(e.mask, r.mask) then
                local e_shape, e_lua = template_shape(e.pattern)
                local same = e.pattern == r.pattern or (shape and shape == e_shape)
                if same then
                    warnings[#warnings + 1] = format("%s: warning: route %s is already declared at %s; this one never matches",
                        r.where, r.pattern, e.where)
                    break
                elseif fixed and e_lua and find(r.pattern, e_lua) then
                    warnings[#warnings + 1] = format("%s: warning: route %s can never match: %s (%s) takes that path first",
                        r.where, r.pattern, e.pattern, e.where)
                    break
                end
            end
        end
    end
    return warnings
end

-- Browsers ask every site for /favicon.ico. Unless the app routes it, it is
-- APP/static/favicon.ico when there is one, else a small built-in icon, so the
-- log is not a 404 per page view.
local FAVICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    .. '<rect width="32" height="32" rx="6" fill="#0b5fad"/>'
    .. '<text x="16" y="23" font-size="20" font-family="sans-serif" text-anchor="middle" fill="#fff">l</text></svg>\n'

local function favicon_route(app)
    local body, ctype
    local f = app.dir and io.open(app.dir .. "/static/favicon.ico", "rb")
    if f then
        body, ctype = f:read("*a"), "image/x-icon"
        f:close()
    else
        body, ctype = FAVICON, "image/svg+xml"
    end
    local headers = { ["Content-Type"] = ctype, ["Cache-Control"] = "public, max-age=86400" }
    return {
        pattern = "/favicon.ico", kind = "function", mask = core.route.method_bit("GET"), internal = true,
        handler = function() return 200, body, headers end, where = "lubeck (built-in /favicon.ico)",
    }
end

local function routes_favicon(app)
    for _, r in ipairs(app.routes) do
        if r.pattern == "/favicon.ico" or (sub(r.pattern, 1, 1) == "^" and find(r.pattern, "favicon", 1, true)) then
            return true
        end
    end
    return false
end

-- Hands every route to the C router, in order (the first match wins).
function App:_compile()
    if not routes_favicon(self) then self.routes[#self.routes + 1] = favicon_route(self) end
    for i, r in ipairs(self.routes) do
        local index, names = core.route.add(r.pattern, r.mask)
        if not index then error(r.where .. ": " .. names, 0) end
        if index ~= i then error("routes were already compiled for another app", 0) end
        r.names = names            -- a name per capture, false for a positional one
        r.named = false
        for _, name in ipairs(names) do r.named = r.named or name ~= false end
    end
end

return App
