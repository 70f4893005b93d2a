-- CSRF protection: a token kept in the session, checked on unsafe methods.
--   local Form = lubeck.Handler:extend(require("lubeck.csrf").CSRFMixin)
-- POST, PUT, PATCH and DELETE must carry the session's token in the form field
-- _csrf or the X-CSRF-Token header, else 403. Templates print the field with
-- <%- csrf_field() %> (available in every handler's render context).
local core = require "lubeck.core"
local errors = require "lubeck.errors"

local type, ipairs = type, ipairs
local secure_compare, random_token = core.crypto.secure_compare, core.crypto.random_token

local _M = { _VERSION = "0.1", FIELD = "_csrf", HEADER = "X-CSRF-Token" }

local UNSAFE = { POST = true, PUT = true, PATCH = true, DELETE = true }

-- The session's token, made on first use.
function _M.token(inst)
    local session = inst.session
    local token = session._csrf
    if type(token) ~= "string" then
        token = random_token(32)
        session._csrf = token
    end
    return token
end

-- <input type="hidden" name="_csrf" value="...">  (the token is base64url: no escaping needed)
function _M.field(inst)
    return '<input type="hidden" name="' .. _M.FIELD .. '" value="' .. _M.token(inst) .. '">'
end

-- true when the request may go on: a safe method, or the right token.
function _M.valid(inst)
    local req = inst.req
    if not UNSAFE[req.method] then return true end
    local expected = inst.session._csrf
    if type(expected) ~= "string" then return false end
    local given = req:header(_M.HEADER) or req:arg(_M.FIELD)
    return type(given) == "string" and secure_compare(given, expected)
end

-- Ends the request with 403 when the token is missing or wrong.
function _M.check(inst)
    if not _M.valid(inst) then errors.abort(403) end
end

local CSRFMixin = {}
_M.CSRFMixin = CSRFMixin

function CSRFMixin:csrf_token() return _M.token(self) end
function CSRFMixin:csrf_field() return _M.field(self) end

-- Adds the check to the class's request checks (run before prepare).
function CSRFMixin.included(cls)
    local checks = {}
    for _, c in ipairs(cls._checks or {}) do
        if c == _M.check then return end
        checks[#checks + 1] = c
    end
    checks[#checks + 1] = _M.check
    cls._checks = checks
end

return _M
