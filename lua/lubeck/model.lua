-- Models: declared in Lua, compiled once into a C schema, validated in C.
--   local model = require "lubeck.model"
--   local Todo = model.define("Todo", {
--     title = model.string{ required = true, min = 1, max = 200 },
--     tags  = model.list(model.string{ max = 20 }, { max = 10 }),
--   })
--   local value, errors = Todo:validate(input)   -- cleaned copy, or nil, { ["tags.3"] = "..." }
--   Todo:public(value)  Todo:schema()
local core = require "lubeck.core"

local setmetatable, getmetatable, pairs, ipairs, type, error, tostring, sort, format =
    setmetatable, getmetatable, pairs, ipairs, type, error, tostring, table.sort, string.format
local model_compile, model_validate = core.model.compile, core.model.validate

local _M = { _VERSION = "0.1" }

local Model = {}
Model.__index = Model
_M.Model = Model

local Field = {}     -- metatable of field declarations
Field.__index = Field

local COMMON = { required = "boolean", private = "boolean", default = "any" }
local OPTIONS = {
    string = { min = "number", max = "number", pattern = "string", choices = "table", trim = "boolean" },
    integer = { min = "number", max = "number" },
    number = { min = "number", max = "number" },
    boolean = {}, email = {}, url = {}, uuid = {}, datetime = {},
    list = { min = "number", max = "number" },
    object = {},
}

local function declare(kind, opts, level)
    opts = opts or {}
    if type(opts) ~= "table" then
        error(format("model.%s{...}: options must be a table, got %s", kind, type(opts)), level)
    end
    local f = setmetatable({ kind = kind }, Field)
    local allowed = OPTIONS[kind]
    for k, v in pairs(opts) do
        local want = allowed[k] or COMMON[k]
        if not want then error(format("model.%s{...}: unknown option '%s'", kind, tostring(k)), level) end
        if want ~= "any" and type(v) ~= want then
            error(format("model.%s{...}: option '%s' must be a %s, got %s", kind, k, want, type(v)), level)
        end
        f[k] = v
    end
    if opts.default ~= nil then f.has_default = true end
    if f.choices then
        for i, c in ipairs(f.choices) do
            if type(c) ~= "string" then error(format("model.%s{...}: choice #%d is not a string", kind, i), level) end
        end
    end
    if f.min and f.max and f.min > f.max then
        error(format("model.%s{...}: min (%s) is above max (%s)", kind, tostring(f.min), tostring(f.max)), level)
    end
    return f
end

for kind in pairs(OPTIONS) do
    if kind ~= "list" and kind ~= "object" then
        _M[kind] = function(opts) return declare(kind, opts, 3) end
    end
end

function _M.list(of, opts)
    if getmetatable(of) ~= Field then error("model.list(of, {...}): 'of' must be a field kind like model.string{}", 2) end
    local f = declare("list", opts, 3)
    f.of = of
    return f
end

function _M.object(m, opts)
    if getmetatable(m) ~= Model then error("model.object(Model): the argument must be a model from model.define", 2) end
    local f = declare("object", opts, 3)
    f.model = m._c
    f.of_model = m
    return f
end

-- trim = true on a string field: leading and trailing whitespace is cut before
-- the checks, so "   " is empty (too short, or absent in a form). Done here, on
-- a copy of the input, before the C checks see it.
local trim_value

local function has_trim(f)
    if f.kind == "string" then return f.trim == true end
    if f.kind == "list" then return has_trim(f.of) end
    if f.kind == "object" then return f.of_model._trims end
    return false
end

local function trim_fields(m, input)
    if type(input) ~= "table" then return input end
    local copy = {}
    for k, v in pairs(input) do copy[k] = v end
    for name, f in pairs(m.fields) do
        if copy[name] ~= nil and has_trim(f) then copy[name] = trim_value(f, copy[name]) end
    end
    return copy
end

trim_value = function(f, v)
    if f.kind == "string" then
        return type(v) == "string" and (v:match("^%s*(.-)%s*$")) or v
    elseif f.kind == "list" and type(v) == "table" then
        local out = {}
        for k, x in pairs(v) do out[k] = x end
        for i = 1, #v do out[i] = trim_value(f.of, v[i]) end
        return out
    elseif f.kind == "object" then
        return trim_fields(f.of_model, v)
    end
    return v
end

-- Compiles the declaration into the C schema; a bad pattern or option raises here.
function _M.define(name, fields)
    if type(name) ~= "string" then error("model.define(name, fields): name must be a string", 2) end
    if type(fields) ~= "table" then error("model.define(name, fields): fields must be a table", 2) end
    local names = {}
    for k, f in pairs(fields) do
        if type(k) ~= "string" then error(format("model %s: field names must be strings", name), 2) end
        if getmetatable(f) ~= Field then
            error(format("model %s: field '%s' must be a field kind like model.string{}", name, k), 2)
        end
        names[#names + 1] = k
    end
    sort(names)
    local decl = {}
    for i, k in ipairs(names) do decl[i] = { k, fields[k] } end
    local ok, c = pcall(model_compile, decl)
    if not ok then error(format("model %s: %s", name, tostring(c)), 2) end
    local m = setmetatable({ name = name, fields = fields, _names = names, _c = c }, Model)
    for _, f in pairs(fields) do m._trims = m._trims or has_trim(f) end
    return m
end

function _M.is_model(v)
    return getmetatable(v) == Model
end

-- value, or nil, { path = message }. opts.form: the input is a form's strings.
function Model:validate(input, opts)
    if self._trims then input = trim_fields(self, input) end
    return model_validate(self._c, input, opts and opts.form)
end

local public_field

local function public_value(f, v)
    if f.kind == "object" and type(v) == "table" then
        return f.of_model:public(v)
    elseif f.kind == "list" and type(v) == "table" and (f.of.kind == "object" or f.of.kind == "list") then
        local out = {}
        for i = 1, #v do out[i] = public_field(f.of, v[i]) end
        return out
    end
    return v
end
public_field = public_value

-- A copy of value without the private fields (nested objects included); fields
-- the model does not declare (such as a resource's id) are kept.
function Model:public(value)
    if type(value) ~= "table" then return value end
    local out = {}
    for k, v in pairs(value) do
        local f = self.fields[k]
        if not f then
            out[k] = v
        elseif not f.private then
            out[k] = public_value(f, v)
        end
    end
    return out
end

local FORMATS = { email = "email", url = "uri", uuid = "uuid", datetime = "date-time" }

local function field_schema(f)
    local s
    local kind = f.kind
    if kind == "string" then
        s = { type = "string", minLength = f.min, maxLength = f.max, pattern = f.pattern }
        if f.choices then
            s.enum = {}
            for i, c in ipairs(f.choices) do s.enum[i] = c end
        end
    elseif kind == "integer" or kind == "number" then
        s = { type = kind, minimum = f.min, maximum = f.max }
    elseif kind == "boolean" then
        s = { type = "boolean" }
    elseif FORMATS[kind] then
        s = { type = "string", format = FORMATS[kind] }
        if kind == "url" then s.pattern = "^[Hh][Tt][Tt][Pp][Ss]?://" end
    elseif kind == "list" then
        s = { type = "array", items = field_schema(f.of), minItems = f.min, maxItems = f.max }
    else
        s = f.of_model:_object_schema()
    end
    if f.has_default then s.default = f.default end
    if f.private then s.writeOnly = true end
    return s
end

function Model:_object_schema()
    local props, required = {}, {}
    for _, k in ipairs(self._names) do
        local f = self.fields[k]
        props[k] = field_schema(f)
        if f.required then required[#required + 1] = k end
    end
    local s = { type = "object", title = self.name, properties = props }
    if #required > 0 then s.required = required end
    return s
end

-- JSON Schema (draft 2020-12) of the model, as a table.
function Model:schema()
    local s = self:_object_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return s
end

Model.__tostring = function(self) return "lubeck.model " .. self.name end

-- Request input ------------------------------------------------------------------

local JSON_MAX_DEPTH = 200     -- as request.lua's decoder
local json_check = core.model.json_check
local lower, find = string.lower, string.find

local function bad_request(errs)
    require("lubeck.errors").abort(400, { status = 400, errors = errs })
end

-- The decoded JSON body of req, or a 400 naming what is wrong with it.
function _M.json_body(req)
    local body = req.body
    if body == "" then bad_request({ [""] = "a JSON body is required" }) end
    local ok, why = json_check(body, JSON_MAX_DEPTH)
    if not ok then bad_request({ [""] = "invalid JSON: " .. why }) end
    local value, err = req:json()
    if value == nil then bad_request({ [""] = err }) end
    return value
end

-- The form (query and body) as model input: lists from repeated names.
local function form_input(req, m)
    local input = {}
    for name, f in pairs(m.fields) do
        if f.kind == "list" then
            local l = req:arg_list(name)
            if #l > 0 then input[name] = l end
        else
            input[name] = req:arg(name)
        end
    end
    return input
end

-- What a request gives m to validate: its JSON body, or its form's fields (and
-- then true: form strings are converted as the declared kinds say).
function _M.request_input(req, m)
    local ctype = lower(req:header("content-type") or "")
    local is_form = find(ctype, "application/x-www-form-urlencoded", 1, true) or
        find(ctype, "multipart/form-data", 1, true)
    if not is_form and (find(ctype, "json", 1, true) or (ctype == "" and req.body:find("^%s*[%[{]"))) then
        return _M.json_body(req), false
    end
    return form_input(req, m), true
end

-- Validates a request's JSON body (or its form) against m: the cleaned value,
-- or the request ends with 400 {"status":400,"errors":{...}}.
function _M.validate_request(req, m)
    if getmetatable(m) ~= Model then error("validate(Model): not a model from model.define", 3) end
    local input, is_form = _M.request_input(req, m)
    local value, errs = m:validate(input, { form = is_form })
    if not value then bad_request(errs) end
    return value
end

return _M
