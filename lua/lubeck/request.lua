-- The request object handlers receive. The cheap fields are filled at once from
-- one C call; headers, body, arguments and cookies are read from C the first
-- time they are used.
local core = require "lubeck.core"
local cjson = require("cjson").new()

local setmetatable, rawget, rawset, type, pcall, pairs, ipairs, tostring =
    setmetatable, rawget, rawset, type, pcall, pairs, ipairs, tostring
local lower, find, gsub = string.lower, string.find, string.gsub
local req_field, req_headers, req_header, req_body = core.req.field, core.req.headers, core.req.header, core.req.body
local req_m2, req_upload = core.req.m2, core.req.upload
local fast = require "lubeck.fast"
local query_arg, req_cookie = fast.query_arg, fast.cookie
local parse_urlencoded, parse_cookies = core.form.parse_urlencoded, core.form.parse_cookies
local parse_multipart = core.form.parse_multipart
local utf8_valid = core.utf8_valid
local errors = require "lubeck.errors"

-- Form bodies past these limits are answered 400 instead of parsed.
local MAX_FORM_BYTES = 8 * 1024 * 1024     -- an urlencoded body, or a multipart body's fields
local MAX_FORM_FIELDS = 10000

cjson.decode_max_depth(200)
cjson.decode_invalid_numbers(false)        -- NaN, Infinity, 0x10 and 01 are not JSON

local _M = {}
local Request = {}
_M.Request = Request

-- Headers read case-insensitively: Mongrel2 lower-cases client header names.
local headers_mt = {
    __index = function(t, k)
        if type(k) == "string" then
            local lk = lower(k)
            if lk ~= k then return rawget(t, lk) end
        end
    end,
}

local lazy = {}

function lazy.headers(req)
    return setmetatable(req_headers(req._handle), headers_mt)
end

-- A Mongrel2 async upload's body is read from its temp file, the first time.
function lazy.body(req)
    local path = req_upload(req._handle)
    if path then
        local f, err = io.open(path, "rb")
        if not f then errors.abort(500, "cannot read the upload: " .. tostring(err)) end
        local body = f:read("*a")
        f:close()
        return body
    end
    return req_body(req._handle)
end

local function is_multipart(ctype)
    return ctype and find(lower(ctype), "multipart/form-data", 1, true) ~= nil
end

-- { fields = { name = {value, ...} }, files = { name = file } } of a multipart
-- body; a malformed one ends the request with 400.
function lazy._multipart(req)
    local ctype = req_header(req._handle, "content-type")
    if not is_multipart(ctype) then return { fields = {}, files = {} } end
    local fields, files = parse_multipart(req.body, ctype)
    if not fields then errors.abort(400, "Bad Request: " .. files .. "\n") end
    local bytes = 0
    for _, values in pairs(fields) do
        for i = 1, #values do bytes = bytes + #values[i] end
    end
    if bytes > MAX_FORM_BYTES then errors.abort(400, "Bad Request: form fields too large\n") end
    return { fields = fields, files = files }
end

-- Several Cookie headers (Mongrel2 hands them over as a list) are one cookie
-- list: join them with "; ", not the ", " that req:header uses.
function lazy.cookies(req)
    local raw = req_header(req._handle, "cookie", "; ")
    if raw == nil then return {} end
    return parse_cookies(raw)
end

-- Multipart files: { filename=, content_type=, body= }. A Mongrel2 async upload
-- that is not multipart: files.file = { filename=, content_type=, path= }, the
-- filename from Content-Disposition or else the last segment of the path.
function lazy.files(req)
    local path = req_upload(req._handle)
    local ctype = req_header(req._handle, "content-type")
    if path and not is_multipart(ctype) then
        local disp = req_header(req._handle, "content-disposition") or ""
        local name = disp:match('filename="([^"]*)"') or disp:match("filename=([^;%s]+)")
            or req.path:match("([^/]+)$") or "upload"
        return { file = { filename = name, content_type = ctype or "application/octet-stream", path = path } }
    end
    return req._multipart.files
end

-- name → list of values, from the query string then an urlencoded body.
function lazy._arg_lists(req)
    local lists = parse_urlencoded(req.query)
    if not req._has_body then return lists end
    local ctype = req_header(req._handle, "content-type")
    local form
    if ctype and find(lower(ctype), "application/x-www-form-urlencoded", 1, true) then
        local body = req.body
        local _, amps = gsub(body, "&", "")
        if #body > MAX_FORM_BYTES or amps >= MAX_FORM_FIELDS then
            errors.abort(400, "Bad Request: form too large\n")
        end
        form = parse_urlencoded(body)
    elseif is_multipart(ctype) then
        form = req._multipart.fields
    end
    if form then
        for name, values in pairs(form) do
            local list = lists[name]
            if list then
                for i = 1, #values do list[#list + 1] = values[i] end
            else
                lists[name] = values
            end
        end
    end
    return lists
end

Request.__index = function(req, key)
    local load = lazy[key]
    if load then
        local v = load(req)
        rawset(req, key, v)
        return v
    end
    return Request[key]
end

-- The rest of the request line and connection, each read from C on first use:
-- core.req.field(handle, i) returns the field FIELDS[i] names (host/lua/lua_core.c,
-- l_req_field; tests/spec/seam_spec.lua checks every position).
_M.FIELDS = { "query", "uri", "version", "remote_addr", "conn_id", "sender", "method", "path" }
for i, key in ipairs(_M.FIELDS) do
    lazy[key] = function(req)
        return req_field(req._handle, i)
    end
end

function lazy.params()
    return {}
end

-- The C router's method bits (router.h) → the method; any other method is read
-- from C when asked for.
local METHODS = {}
for _, m in ipairs(require("lubeck.methods").list) do
    METHODS[core.route.method_bit(m)] = m
end

function _M.new(handle, method_bit, has_body)
    return setmetatable({ _handle = handle, method = METHODS[method_bit], _has_body = has_body }, Request)
end

-- The values of a header joined by ", " (nil when absent).
function Request:header(name)
    return req_header(self._handle, name)
end

-- The last value of an argument (query or form), or default.
function Request:arg(name, default)
    -- Without a body only the query counts: read the one value from C rather
    -- than building every list.
    if not self._has_body and rawget(self, "_arg_lists") == nil then
        local v = query_arg(self._handle, name)
        if v == nil then return default end
        return v
    end
    local list = self._arg_lists[name]
    if list then return list[#list] end
    return default
end

function Request:arg_list(name)
    local list, copy = self._arg_lists[name], {}
    if list then for i = 1, #list do copy[i] = list[i] end end
    return copy
end

function Request:args()
    local out = {}
    for name, list in pairs(self._arg_lists) do out[name] = list[#list] end
    return out
end

-- The body as JSON (RFC 8259): the value, or nil, err for anything else,
-- including text that is not UTF-8 (cjson would pass its bytes through).
function Request:json()
    local body = self.body
    if body == "" then return nil, "empty body" end
    if not utf8_valid(body) then return nil, "invalid JSON: the body is not UTF-8" end
    local ok, value = pcall(cjson.decode, body)
    if not ok then return nil, "invalid JSON: " .. tostring(value) end
    return value
end

function Request:cookie(name)
    local cookies = rawget(self, "cookies")
    if cookies then return cookies[name] end
    return req_cookie(self._handle, name)   -- one cookie: no table for all of them
end

-- A raw Mongrel2 header such as "PATTERN" or "URL_SCHEME".
function Request:m2(key)
    return req_m2(self._handle, key)
end

return _M
