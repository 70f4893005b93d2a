-- Users and passwords.
--   local auth = require "lubeck.auth"
--   local Private = lubeck.Handler:extend(auth.UserMixin)
--   function Private:get_current_user() return self.session.user end
--   Private.get = auth.authenticated(function(self) return "hi " .. self:current_user() end)
--   auth.hash_password(pw) → "$argon2id$..."     auth.verify_password(pw, hash) → boolean
local core = require "lubeck.core"
local csrf = require "lubeck.csrf"

local type, error, format, byte, gsub, find = type, error, string.format, string.byte, string.gsub, string.find

local _M = { _VERSION = "0.1" }

_M.CSRFMixin = csrf.CSRFMixin

-- UserMixin: current_user() asks get_current_user() once per request and keeps
-- the answer. Without a get_current_user, nobody is logged in.
local UserMixin = {}
_M.UserMixin = UserMixin

function UserMixin:current_user()
    if self._user_known then return self._user end
    local get = self.get_current_user
    local user = nil
    if type(get) == "function" then user = get(self) end
    self._user, self._user_known = user, true
    return user
end

-- Forgets the cached user (after a login or logout in the same request).
function UserMixin:set_current_user(user)
    self._user, self._user_known = user, true
end

local function url_encode(s)
    return (gsub(s, "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end
_M.url_encode = url_encode

-- Wraps a handler method: with no current user, 302 to the login URL with
-- ?next=<path and query> (the class's login_url, else the app's; false: none),
-- or 401 without one.
function _M.authenticated(fn)
    if type(fn) ~= "function" then error("auth.authenticated: wraps a function", 2) end
    return function(self, ...)
        local user
        if type(self.current_user) == "function" then user = self:current_user() end
        if user == nil or user == false then
            local login = self.login_url
            if login == nil then login = self.app.login_url end
            if login then
                local req = self.req
                local target = req.path
                if req.query and req.query ~= "" then target = target .. "?" .. req.query end
                local sep = find(login, "?", 1, true) and "&" or "?"
                return self:redirect(login .. sep .. "next=" .. url_encode(target))
            end
            return self:send_error(401)
        end
        return fn(self, ...)
    end
end

function _M.hash_password(pw)
    if type(pw) ~= "string" then error("auth.hash_password: the password must be a string", 2) end
    return core.crypto.hash_password(pw)
end

function _M.verify_password(pw, hash)
    if type(pw) ~= "string" or type(hash) ~= "string" then return false end
    return core.crypto.verify_password(pw, hash)
end

return _M
