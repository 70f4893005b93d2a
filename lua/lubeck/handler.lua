-- Class handlers with Brubeck's method dispatch and Mixins:
--   local Hello = lubeck.Handler:extend(SomeMixin)
--   function Hello:get(name) return "hi " .. name end
local Response = require "lubeck.response"
local session = require "lubeck.session"
local template = require "lubeck.template"
local csrf = require "lubeck.csrf"
local http_methods = require "lubeck.methods"

local setmetatable, pairs, ipairs, type, error, select, concat, rawset =
    setmetatable, pairs, ipairs, type, error, select, table.concat, rawset

local _M = {}

local Handler = setmetatable({}, { __index = Response })
Handler.__index = Handler
Handler._handler_class = true

-- HTTP method → the instance method that serves it (HEAD: get, body dropped).
local METHODS = { HEAD = "get" }
local ORDER = http_methods.class_methods
for _, m in ipairs(ORDER) do METHODS[m:upper()] = m end

-- A subclass with the mixins' methods copied in, in order. A mixin's
-- included(cls) runs once for the class.
function Handler:extend(...)
    local cls = setmetatable({}, { __index = self })
    cls.__index = cls
    cls.super = self
    for i = 1, select("#", ...) do
        local mixin = select(i, ...)
        if type(mixin) ~= "table" then
            error("extend: mixin #" .. i .. " is a " .. type(mixin) .. ", not a table", 2)
        end
        for k, v in pairs(mixin) do
            if k ~= "included" then cls[k] = v end
        end
    end
    for i = 1, select("#", ...) do
        local mixin = select(i, ...)
        if type(mixin.included) == "function" then mixin.included(cls) end
    end
    return cls
end

function _M.is_class(v)
    return type(v) == "table" and v._handler_class == true
end

-- "GET, HEAD, POST, OPTIONS": what a class implements.
function _M.allow(cls)
    local names = {}
    for _, m in ipairs(ORDER) do
        if type(cls[m]) == "function" then
            names[#names + 1] = m:upper()
            if m == "get" then names[#names + 1] = "HEAD" end
        end
    end
    if type(cls.options) ~= "function" then names[#names + 1] = "OPTIONS" end
    return concat(names, ", ")
end

-- Instance fields made on first use: self.session, self.params. An instance's
-- metatable looks methods up in its class, then these.
local lazy_fields = {
    session = session.load,
    params = function(inst) return inst.req.params end,
}
local instance_mts = setmetatable({}, { __mode = "k" })

-- (Made apart from instance_mt: a function that creates a closure cannot be
-- compiled by LuaJIT, and instance_mt runs for every request.)
local function make_instance_mt(cls)
    return { __index = function(inst, k)
        local v = cls[k]
        if v == nil then
            local make = lazy_fields[k]
            if make then
                v = make(inst)
                rawset(inst, k, v)
            end
        end
        return v
    end }
end

local function instance_mt(cls)
    local mt = instance_mts[cls]
    if not mt then
        mt = make_instance_mt(cls)
        instance_mts[cls] = mt
    end
    return mt
end

function _M.new_instance(cls, req, app)
    return Response.new(req, app, instance_mt(cls))
end

-- Runs the checks mixins add (CSRF) and prepare, then picks the method the
-- request asks for; nil when one of them has finished the response, or when
-- the class has no such method (then 405, or 204 with Allow to OPTIONS).
-- (Hooks and methods are looked up on the class: an instance lookup would go
-- through the instance metatable's function.)
function _M.method_for(inst, cls, req)
    local checks = cls._checks
    if checks then
        for i = 1, #checks do
            checks[i](inst)
            if inst._finished then return nil end
        end
    end
    local prepare = cls.prepare
    if type(prepare) == "function" then
        prepare(inst)
        if inst._finished then return nil end
    end
    local method = req.method
    local name = METHODS[method]
    local fn = name and cls[name]
    if method == "HEAD" and type(cls.head) == "function" then fn = cls.head end
    if type(fn) == "function" then return fn end
    local allow = _M.allow(cls)
    if method == "OPTIONS" then
        inst:set_header("Allow", allow)
        inst:set_status(204)
        inst:finish()
    else
        inst:send_error(405, nil, { "Allow", allow })
    end
    return nil
end

-- Renders a template of the app (lubeck.template) and finishes the response.
-- Besides ctx, templates see render, escape, csrf_token(), csrf_field(),
-- current_user (when the class has one), handler and req.
function Handler:render(name, ctx, status)
    local helpers = {
        handler = self, req = self.req,
        csrf_token = function() return csrf.token(self) end,
        csrf_field = function() return csrf.field(self) end,
    }
    if type(self.current_user) == "function" then helpers.current_user = self:current_user() end
    local html = template.for_app(self.app):render(name, ctx, helpers)
    if status then self:set_status(status) end
    if not self:get_header("Content-Type") then self:set_header("Content-Type", Response.HTML_TYPE) end
    self:finish(html)
end

-- Saves self.session when it changed (the response calls it before the head).
Handler._before_head = session.save

function Handler:get_argument(name, default)
    return self.req:arg(name, default)
end

function Handler:get_arguments(name)
    return self.req:arg_list(name)
end

-- The request's JSON body (or form) checked against a model (lubeck.model):
-- the cleaned value, or the request ends with 400 and the field errors.
function Handler:validate(m)
    return require("lubeck.model").validate_request(self.req, m)
end

_M.Handler = Handler

-- Like Handler, but errors and aborts answer JSON: {"status":404,"error":"not found"}.
local JSONHandler = Handler:extend()
JSONHandler._json_errors = true
_M.JSONHandler = JSONHandler

return _M
