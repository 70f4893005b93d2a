-- The `ngx` table that OpenResty's pure-Lua client libraries use, on lubeck's
-- own parts, so that lua-resty-redis, -memcached, -websocket (client), -dns
-- pgmoon and lua-resty-http run unmodified inside handlers:
--   require "lubeck.ngx"                 -- sets the global ngx
--   local redis = require "resty.redis"  -- or Debian's name, "nginx.redis"
-- What is here: ngx.socket.tcp/udp (lubeck's cosockets), ngx.null, ngx.re.* (PCRE2),
-- digests and base64, time, sleep, log, worker, config, get_phase, shared
-- dicts, light threads. What is not: nginx's request and response API
-- (ngx.say, ngx.req, ngx.var, ngx.header, ngx.exit: a lubeck handler returns
-- its response), ngx.timer, ngx.ctx. See docs/ecosystem.md.
local core = require "lubeck.core"
local cjson = require "cjson"
local shared = require "lubeck.shared"
require "lubeck.coroutine"

local type, tostring, select, error, setmetatable, pairs, ipairs = type, tostring, select, error,
    setmetatable, pairs, ipairs
local concat, sub, byte, format, floor = table.concat, string.sub, string.byte,
    string.format, math.floor
local gsub, find, tonumber = string.gsub, string.find, tonumber
local re_exec, re_names = core.re.exec, core.re.names
local md5_bin, decode_base64, in_request = core.ngx.md5_bin, core.ngx.decode_base64, core.ngx.in_request
local url_decode = core.form.url_decode

if type(_G.ngx) == "table" and _G.ngx.lubeck then return _G.ngx end

local ngx = { lubeck = true }

-- ---- sockets, null ------------------------------------------------------------

ngx.null = cjson.null   -- lightuserdata NULL, as in OpenResty (where cjson.null == ngx.null)

ngx.socket = {
    tcp = core.tcp,
    stream = core.tcp,
    udp = core.udp,
    connect = function(host, port, opts)
        local sock = core.tcp()
        local ok, err = sock:connect(host, port, opts)
        if not ok then return nil, err end
        return sock
    end,
}

-- ---- time ---------------------------------------------------------------------

ngx.now = core.now
ngx.sleep = core.sleep
function ngx.update_time() end
function ngx.time() return floor(core.now()) end

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

function ngx.today() return os.date("%Y-%m-%d", ngx.time()) end
function ngx.localtime() return os.date("%Y-%m-%d %H:%M:%S", ngx.time()) end
function ngx.utctime() return os.date("!%Y-%m-%d %H:%M:%S", ngx.time()) end

function ngx.http_time(sec)
    local t = os.date("!*t", sec)
    return format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[t.wday], t.day, MONTHS[t.month],
                  t.year, t.hour, t.min, t.sec)
end

function ngx.cookie_time(sec)
    local t = os.date("!*t", sec)
    return format("%s, %02d-%s-%04d %02d:%02d:%02d GMT", DAYS[t.wday], t.day, MONTHS[t.month],
                  t.year, t.hour, t.min, t.sec)
end

-- ---- logging ------------------------------------------------------------------

ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR = 0, 1, 2, 3, 4
ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG = 5, 6, 7, 8

-- ngx.log(level, ...): the arguments joined as ngx_lua joins them (nil → "nil",
-- booleans → "true"/"false", ngx.null → "null"). DEBUG is logged in debug mode only.
function ngx.log(level, ...)
    if type(level) ~= "number" then error("bad argument #1 to 'log' (number expected)", 2) end
    if level >= ngx.DEBUG and not core.debug then return end
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
        local v = select(i, ...)
        parts[i] = v == ngx.null and "null" or tostring(v)
    end
    local info = debug.getinfo(2, "Sl")
    local where = info and (info.short_src .. ":" .. (info.currentline or 0) .. ": ") or ""
    core.log(level <= ngx.ERR and "error" or level == ngx.WARN and "warn" or "info",
             "[lua] " .. where .. concat(parts))
end

-- ---- digests, base64, URIs ----------------------------------------------------

ngx.md5_bin = md5_bin
ngx.sha1_bin = core.ngx.sha1_bin
ngx.hmac_sha1 = core.ngx.hmac_sha1
ngx.crc32_short = core.ngx.crc32
ngx.crc32_long = core.ngx.crc32
ngx.encode_base64 = core.ngx.encode_base64

function ngx.md5(s)
    return (gsub(md5_bin(s), ".", function(c) return format("%02x", byte(c)) end))
end

function ngx.decode_base64(s)
    if type(s) ~= "string" then error("bad argument #1 to 'decode_base64' (string expected)", 2) end
    return decode_base64(s)
end

-- As ngx.escape_uri: everything but unreserved characters is %XX.
function ngx.escape_uri(s)
    return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

function ngx.unescape_uri(s)
    return url_decode(tostring(s))
end

local function encode_arg(k, v, out)
    if v == true then out[#out + 1] = ngx.escape_uri(k)
    elseif v ~= false and v ~= nil then
        out[#out + 1] = ngx.escape_uri(k) .. "=" .. ngx.escape_uri(v)
    end
end

function ngx.encode_args(args)
    local out = {}
    for k, v in pairs(args) do
        if type(v) == "table" then
            for _, x in ipairs(v) do encode_arg(k, x, out) end
        else
            encode_arg(k, v, out)
        end
    end
    return concat(out, "&")
end

function ngx.decode_args(s, max)
    local args, n = {}, 0
    for pair in s:gmatch("[^&]+") do
        n = n + 1
        if max and max > 0 and n > max then break end
        local k, v = pair:match("^([^=]*)=(.*)$")
        if k then k, v = ngx.unescape_uri(k), ngx.unescape_uri(v)
        else k, v = ngx.unescape_uri(pair), true end
        local old = args[k]
        if old == nil then args[k] = v
        elseif type(old) == "table" then old[#old + 1] = v
        else args[k] = { old, v } end
    end
    return args
end

function ngx.quote_sql_str(s)
    local quoted = gsub(s, "[%z\b\n\r\t\26\\'\"]", {
        ["\0"] = "\\0", ["\b"] = "\\b", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
        ["\26"] = "\\Z", ["\\"] = "\\\\", ["'"] = "\\'", ['"'] = '\\"',
    })
    return "'" .. quoted .. "'"
end

-- ---- ngx.re on PCRE2 ------------------------------------------------------------

-- The captures table of a match: [0] the whole match, [n] each group (false
-- when it took no part), and each named group by name.
local function captures(subject, offsets, regex, opts, res)
    local caps = res or {}
    for i = 0, #offsets / 2 - 1 do
        local from, to = offsets[2 * i + 1], offsets[2 * i + 2]
        caps[i] = from and sub(subject, from, to) or false
    end
    local names = re_names(regex, opts)
    if names then
        for name, group in pairs(names) do caps[name] = caps[group] end
    end
    return caps
end

local function check_subject(s, fname)
    if type(s) == "number" then return tostring(s) end
    if type(s) ~= "string" then
        error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(s) .. ")", 3)
    end
    return s
end

local re = {}

-- ngx.re.match(subject, regex [, options [, ctx [, res_table]]]) → captures | nil | nil, err
function re.match(subject, regex, opts, ctx, res)
    subject = check_subject(subject, "match")
    opts = opts or ""
    local offsets, err = re_exec(subject, regex, opts, ctx and ctx.pos or 1)
    if not offsets then return nil, err end
    if ctx then ctx.pos = offsets[2] + 1 end
    return captures(subject, offsets, regex, opts, res)
end

-- ngx.re.find(subject, regex [, options [, ctx [, nth]]]) → from, to | nil | nil, err
function re.find(subject, regex, opts, ctx, nth)
    subject = check_subject(subject, "find")
    local offsets, err = re_exec(subject, regex, opts or "", ctx and ctx.pos or 1)
    if not offsets then return nil, nil, err end
    if ctx then ctx.pos = offsets[2] + 1 end
    nth = nth or 0
    local from, to = offsets[2 * nth + 1], offsets[2 * nth + 2]
    if from == nil then return nil, nil, "nth out of bound" end
    if not from then return nil, nil end
    return from, to
end

-- The next search after a match ending at `to`: an empty match steps one on.
local function next_pos(offsets)
    local from, to = offsets[1], offsets[2]
    return to < from and to + 2 or to + 1
end

-- ngx.re.gmatch(subject, regex [, options]) → iterator (captures | nil | nil, err)
function re.gmatch(subject, regex, opts)
    subject = check_subject(subject, "gmatch")
    opts = opts or ""
    local pos = 1
    return function()
        if not pos or pos > #subject + 1 then return nil end
        local offsets, err = re_exec(subject, regex, opts, pos)
        if not offsets then
            pos = nil
            return nil, err
        end
        pos = next_pos(offsets)
        return captures(subject, offsets, regex, opts)
    end
end

-- A replacement template: $0..$9, ${name}, ${12}, $$ (in one pass: a
-- capture's own "$" is not read again).
local function expand(template, caps)
    local out, i, n = {}, 1, #template
    while i <= n do
        local d = find(template, "$", i, true)
        if not d then
            out[#out + 1] = sub(template, i)
            break
        end
        out[#out + 1] = sub(template, i, d - 1)
        local c = sub(template, d + 1, d + 1)
        if c == "$" then
            out[#out + 1] = "$"
            i = d + 2
        elseif c == "{" then
            local close = find(template, "}", d + 2, true)
            if not close then error("bad template: unclosed ${", 0) end
            local key = sub(template, d + 2, close - 1)
            local v = caps[tonumber(key) or key]
            if v == nil then error("bad template: unknown capture ${" .. key .. "}", 0) end
            out[#out + 1] = v or ""
            i = close + 1
        elseif find(c, "^%d$") then
            out[#out + 1] = caps[tonumber(c)] or ""   -- a group that took no part: empty
            i = d + 2
        else
            error("bad template: a lone $ at " .. d, 0)
        end
    end
    return concat(out)
end

local function substitute(fname, subject, regex, replace, opts, global)
    subject = check_subject(subject, fname)
    opts = opts or ""
    local rtype = type(replace)
    if rtype ~= "string" and rtype ~= "function" then
        error("bad argument #3 to '" .. fname .. "' (string or function expected)", 3)
    end
    local out, n, pos, last = {}, 0, 1, 1
    while pos <= #subject + 1 do
        local offsets, err = re_exec(subject, regex, opts, pos)
        if not offsets then
            if err then return nil, nil, err end
            break
        end
        local caps = captures(subject, offsets, regex, opts)
        local ok, piece
        if rtype == "function" then ok, piece = true, replace(caps)
        else ok, piece = pcall(expand, replace, caps) end
        if not ok then return nil, nil, piece end
        out[#out + 1] = sub(subject, last, offsets[1] - 1)
        out[#out + 1] = tostring(piece)
        n = n + 1
        last = offsets[2] + 1
        pos = next_pos(offsets)
        if offsets[2] < offsets[1] then   -- an empty match keeps the character it stood on
            out[#out + 1] = sub(subject, offsets[1], offsets[1])
            last = offsets[1] + 1
        end
        if not global then break end
    end
    out[#out + 1] = sub(subject, last)
    return concat(out), n
end

function re.sub(subject, regex, replace, opts)
    return substitute("sub", subject, regex, replace, opts, false)
end

function re.gsub(subject, regex, replace, opts)
    return substitute("gsub", subject, regex, replace, opts, true)
end

-- ngx.re.split (lua-resty-core's ngx.re module): the pieces between matches.
function re.split(subject, regex, opts, ctx, max, res)
    subject = check_subject(subject, "split")
    local out, pos, last = res or {}, ctx and ctx.pos or 1, ctx and ctx.pos or 1
    local n = 0
    while pos <= #subject do
        if max and max > 0 and n >= max - 1 then break end
        local offsets, err = re_exec(subject, regex, opts or "", pos)
        if not offsets then
            if err then return nil, err end
            break
        end
        if offsets[2] >= offsets[1] or offsets[1] > last then
            n = n + 1
            out[n] = sub(subject, last, offsets[1] - 1)
            last = offsets[2] + 1
        end
        pos = next_pos(offsets)
    end
    n = n + 1
    out[n] = sub(subject, last)
    for i = n + 1, #out do out[i] = nil end
    return out
end

function re.opt() end   -- tuning knobs of ngx_lua's PCRE: nothing to tune here

ngx.re = re

-- ---- workers, config, phase ---------------------------------------------------

ngx.worker = {
    pid = core.ngx.pid,
    id = function() return 0 end,
    count = function() return 1 end,
    exiting = function() return false end,
}

ngx.config = {
    subsystem = "http",
    debug = core.debug,
    ngx_lua_version = 10025,      -- what the libraries check for features (SSL: >= 9011)
    nginx_version = 1021004,
    prefix = function() return "" end,
    nginx_configure = function() return "" end,
}

function ngx.get_phase()
    return in_request() and "content" or "init"
end

-- ---- shared dicts and light threads ----------------------------------------------

local Dict = {}
Dict.__index = Dict
function Dict:get(key) return self.dict:get(key) end
function Dict:set(key, value, ttl) return self.dict:set(key, value, ttl) end
function Dict:delete(key) return self.dict:delete(key) end
function Dict:incr(key, by, init, ttl) return self.dict:incr(key, by or 1, init, ttl) end
function Dict:add(key, value, ttl)
    if self.dict:get(key) ~= nil then return false, "exists" end
    return self.dict:set(key, value, ttl)
end

ngx.shared = setmetatable({}, { __index = function(t, name)
    local d = setmetatable({ dict = shared.new(name) }, Dict)
    t[name] = d
    return d
end })

ngx.thread = {
    spawn = core.spawn,
    wait = function(t, ...)
        if select("#", ...) > 0 then error("ngx.thread.wait: lubeck waits for one thread at a time", 2) end
        return t:wait()
    end,
}

-- ---- what is not offered ------------------------------------------------------
-- nginx's own request and response: a lubeck handler gets a request and
-- returns its response. These say so when called, rather than failing with
-- "attempt to call a nil value" (a library may keep them in locals at load).

local function not_offered(name, why)
    return function()
        error("ngx." .. name .. " is not offered by lubeck.ngx (" .. why .. ")", 2)
    end
end

local RESPONSE = "a lubeck handler returns its response"
for _, name in ipairs{ "say", "print", "exit", "flush", "eof", "send_headers", "redirect", "exec" } do
    ngx[name] = not_offered(name, RESPONSE)
end
ngx.req = setmetatable({}, { __index = function(_, name)
    return not_offered("req." .. name, "use the request passed to the handler")
end })
ngx.var = {}        -- reads give nil: there is no nginx variable
ngx.header = setmetatable({}, { __newindex = function(_, name)
    error("ngx.header." .. tostring(name) .. " is not offered by lubeck.ngx (" .. RESPONSE .. ")", 2)
end })

-- ---- both package names ------------------------------------------------------------

-- Debian installs OpenResty's libraries as nginx.* (nginx.redis, ...); code
-- written for OpenResty says resty.*. Each name finds the other's file.
local loaders = package.loaders
local function other_name(name)
    local rest = name:match("^resty%.(.+)$")
    if rest then return "nginx." .. rest end
    rest = name:match("^nginx%.(.+)$")
    if rest then return "resty." .. rest end
end
local function alias_loader(name)
    local other = other_name(name)
    if not other then return nil end
    local path = package.searchpath(other, package.path)
    if not path then return "\n\tno file for its other name '" .. other .. "'" end
    return function() return require(other) end   -- one module under both names
end
local installed = false
for _, f in ipairs(loaders) do if f == alias_loader then installed = true end end
if not installed then loaders[#loaders + 1] = alias_loader end

_G.ngx = ngx
return ngx
