-- Secure cookies and sessions.
--
-- A secure cookie holds B64(value)|TIMESTAMP|HMAC-SHA256 (see host/services/crypto.h),
-- signed with the app's cookie_secret over the cookie's name, value and
-- timestamp; a tampered or expired one reads as nil.
--
-- self.session is a plain table, loaded on first use. When it changed by the
-- time the response head leaves, the store saves it (Set-Cookie). Stores:
--   require("lubeck.session").cookie{ name = "session", max_age_days = 31 }   (default)
--   require("lubeck.session").redis{ host =, port =, prefix = "session:", max_age_days = 31 }
-- given to the app as lubeck.app{ session_store = ... }.
local core = require "lubeck.core"
local cjson = require("cjson").new()

local type, error, format, setmetatable, next, tostring, pcall, pairs, rawget =
    type, error, string.format, setmetatable, next, tostring, pcall, pairs, rawget
local sign_value, verify_value, random_token = core.crypto.sign_value, core.crypto.verify_value, core.crypto.random_token

local _M = { _VERSION = "0.1" }

local DAY = 86400
local MAX_COOKIE = 4000

-- The app's cookie_secret, or a clear error naming what needed it.
local function secret_of(app, what, level)
    local secret = app and app.cookie_secret
    if type(secret) ~= "string" or secret == "" then
        error(format("%s needs the app's cookie_secret: lubeck.app{ cookie_secret = ... } "
            .. "(a long random string, e.g. from an environment variable)", what), level + 1)
    end
    return secret
end
_M.secret_of = secret_of

-- Secure cookies ------------------------------------------------------------------

function _M.set_secure_cookie(resp, name, value, opts, level)
    level = level or 2
    local secret = secret_of(resp.app, "set_secure_cookie", level + 1)
    if type(value) ~= "string" then
        if type(value) == "number" then value = tostring(value)
        else error("set_secure_cookie: the value must be a string", level + 1) end
    end
    name = tostring(name)
    resp:set_cookie(name, sign_value(secret, name, value), opts)
end

function _M.get_secure_cookie(resp, name, max_age_days, level)
    level = level or 2
    local secret = secret_of(resp.app, "get_secure_cookie", level + 1)
    local raw = resp.req:cookie(name)
    if raw == nil then return nil end
    if max_age_days == nil then max_age_days = 31 end
    return (verify_value(secret, tostring(name), raw, max_age_days * DAY))
end

-- Session encoding --------------------------------------------------------------------

local function encode(data)
    local ok, s = pcall(cjson.encode, data)
    if not ok then error("self.session holds a value JSON cannot store: " .. tostring(s), 0) end
    return s
end

local function decode(s)
    local ok, v = pcall(cjson.decode, s)
    if ok and type(v) == "table" then return v end
    return nil
end

-- Stores -------------------------------------------------------------------------------

-- The whole session in the signed cookie: no server state.
local CookieStore = {}
CookieStore.__index = CookieStore

function _M.cookie(opts)
    opts = opts or {}
    return setmetatable({
        kind = "cookie", name = opts.name or "session", max_age_days = opts.max_age_days or 31,
        secure = opts.secure, same_site = opts.same_site or "Lax",
    }, CookieStore)
end

function CookieStore:load(inst)
    local s = _M.get_secure_cookie(inst, self.name, self.max_age_days, 3)
    return s and decode(s)
end

function CookieStore:save(inst, data, encoded)
    local opts = { max_age = self.max_age_days * DAY, secure = self.secure, same_site = self.same_site }
    if next(data) == nil then
        if inst.req:cookie(self.name) then inst:clear_cookie(self.name) end
        return
    end
    local secret = secret_of(inst.app, "self.session", 3)
    local value = sign_value(secret, self.name, encoded)
    if #value > MAX_COOKIE then
        error(format("self.session is %d bytes signed, too big for a cookie (at most %d): keep less "
            .. "in it, or use session_store = require(\"lubeck.session\").redis{...}", #value, MAX_COOKIE), 0)
    end
    inst:set_cookie(self.name, value, opts)
end

-- The session in Redis under a random id; the signed cookie holds the id.
local RedisStore = {}
RedisStore.__index = RedisStore

function _M.redis(opts)
    opts = opts or {}
    return setmetatable({
        kind = "redis", name = opts.name or "session", max_age_days = opts.max_age_days or 31,
        host = opts.host or "127.0.0.1", port = opts.port or 6379, password = opts.password,
        db = opts.db, prefix = opts.prefix or "session:", secure = opts.secure,
        same_site = opts.same_site or "Lax", timeout = opts.timeout,
    }, RedisStore)
end

local function connect(store)
    local redis = require "lubeck.redis"
    local r, err = redis.connect{ host = store.host, port = store.port, password = store.password,
        db = store.db, timeout = store.timeout }
    if not r then error(format("session store: cannot reach Redis at %s:%s: %s",
        store.host, tostring(store.port), tostring(err)), 0) end
    return r
end

function RedisStore:load(inst)
    local id = _M.get_secure_cookie(inst, self.name, self.max_age_days, 3)
    if not id then return nil end
    inst._session_id = id
    local r = connect(self)
    local s, err = r:call("GET", self.prefix .. id)
    if s == nil and err then error("session store: Redis GET failed: " .. tostring(err), 0) end
    r:keepalive()
    return s and decode(s)
end

function RedisStore:save(inst, data, encoded)
    local id = inst._session_id or _M.get_secure_cookie(inst, self.name, self.max_age_days, 3)
    local r = connect(self)
    if inst._session_regenerate and id then
        -- a new id after a login: the old one (maybe planted) is dropped
        r:call("DEL", self.prefix .. id)
        id = nil
    end
    if next(data) == nil then
        if id then r:call("DEL", self.prefix .. id) end
        if inst.req:cookie(self.name) then inst:clear_cookie(self.name) end
        r:keepalive()
        return
    end
    local fresh = id == nil
    if fresh then id = random_token(32) end
    inst._session_regenerate = nil
    local ok, err = r:call("SET", self.prefix .. id, encoded, "EX", self.max_age_days * DAY)
    if not ok then error("session store: Redis SET failed: " .. tostring(err), 0) end
    r:keepalive()
    inst._session_id = id
    if fresh then
        _M.set_secure_cookie(inst, self.name, id,
            { max_age = self.max_age_days * DAY, secure = self.secure, same_site = self.same_site }, 3)
    end
end

local default_store = _M.cookie()

local function store_of(app)
    return app.session_store or default_store
end

-- The session of a handler instance (self.session on first use).
function _M.load(inst)
    local app = inst.app
    secret_of(app, "self.session", 3)
    local data = store_of(app):load(inst) or {}
    inst._session_orig = encode(data)
    return data
end

-- Saves the session when it was used and changed; runs just before the head
-- of the response leaves.
function _M.save(inst)
    local data = rawget(inst, "session")
    if data == nil then return end
    if type(data) ~= "table" then error("self.session must be a table, got " .. type(data), 0) end
    local encoded = encode(data)
    if encoded == inst._session_orig then return end
    store_of(inst.app):save(inst, data, encoded)
    inst._session_orig = encoded
end

-- Empties the session and gives it a new id (after a login: no fixation).
function _M.regenerate(inst)
    local data = inst.session
    for k in pairs(data) do data[k] = nil end
    inst._session_regenerate = true
    inst._session_orig = false
end

-- Checks a store given to lubeck.app{ session_store = ... }.
function _M.is_store(v)
    return type(v) == "table" and type(v.load) == "function" and type(v.save) == "function"
end

return _M
