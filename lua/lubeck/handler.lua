-- Class handlers with Brubeck's method dispatch and Mixins:
--   local Hello = lubeck.Handler:extend(SomeMixin)
--   function Hello:get(name) return "hi " .. name end
local Response = require "lubeck.response"

local setmetatable, pairs, ipairs, type, error, select, concat = setmetatable, pairs, ipairs, type, error, select, table.concat

local _M = {}

local Handler = setmetatable({}, { __index = Response })
Handler.__index = Handler
Handler._handler_class = true

-- HTTP method → the instance method that serves it.
local METHODS = {
    GET = "get", HEAD = "get", POST = "post", PUT = "put", PATCH = "patch",
    DELETE = "delete", OPTIONS = "options",
}
local ORDER = { "get", "post", "put", "patch", "delete", "options" }

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

function _M.new_instance(cls, req, app)
    local inst = setmetatable(Response.new(req, app), cls)
    inst.params = req.params
    inst._json_errors = cls._json_errors
    return inst
end

-- Runs prepare, then the method the request asks for. Returns what the method
-- returned (the pipeline turns it into the response).
function _M.run(inst, cls, req, ...)
    if type(inst.prepare) == "function" then
        inst:prepare()
        if inst._finished then return end
    end
    local method = req.method
    local name = METHODS[method]
    local fn = name and inst[name]
    if method == "HEAD" and type(inst.head) == "function" then fn = inst.head end
    if type(fn) ~= "function" then
        local allow = _M.allow(cls)
        if method == "OPTIONS" then
            inst:set_header("Allow", allow)
            inst:set_status(204)
            return inst:finish()
        end
        return inst:send_error(405, nil, { "Allow", allow })
    end
    return fn(inst, ...)
end

function Handler:get_argument(name, default)
    return self.req:arg(name, default)
end

function Handler:get_arguments(name)
    return self.req:arg_list(name)
end

_M.Handler = Handler

-- Like Handler, but errors and aborts answer JSON: {"status":404,"error":"not found"}.
local JSONHandler = Handler:extend()
JSONHandler._json_errors = true
_M.JSONHandler = JSONHandler

return _M
