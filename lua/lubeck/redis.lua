-- A Redis client (RESP2) on lubeck's cosockets: each command suspends only the
-- calling request's coroutine.
--   local redis = require "lubeck.redis"
--   local r = assert(redis.connect{ host = "127.0.0.1", port = 6379 })
--   r:set("k", "v"); local v = r:get("k")
--   local replies = r:pipeline(function(p) p:incr("n"); p:get("n") end)
--   r:keepalive()      -- back to the pool (or r:close())
-- Replies: status → string ("OK"), integer → number, bulk → string, nil bulk →
-- redis.null inside arrays and nil at top level, array → table, error → nil, "ERR …".
local core = require "lubeck.core"
local lubeck_tcp = core.tcp

local setmetatable, type, tostring, tonumber, error, select = setmetatable, type, tostring, tonumber, error, select
local concat, upper, sub, byte = table.concat, string.upper, string.sub, string.byte
local format, floor, huge = string.format, math.floor, math.huge

local _M = { _VERSION = "0.1" }
local null = setmetatable({}, { __tostring = function() return "redis.null" end })
_M.null = null

local Client = {}
Client.__index = function(self, name)
    local method = Client[name]
    if method then return method end
    -- Any other name is a Redis command: r:hset(...), r:lpush(...), ...
    local cmd = upper(name)
    local f = function(client, ...) return client:call(cmd, ...) end
    Client[name] = f
    return f
end

-- A number as Redis reads it: integers in full (tostring gives only 14
-- significant digits: 123456789012345 would go out as "1.2345678901234e+14",
-- which INCRBY refuses and SET stores mangled), other numbers in the fewest
-- digits that read back the same.
local function number_arg(x)
    if x == floor(x) and x > -2^63 and x < 2^63 then return format("%d", x) end
    if x ~= x or x == huge or x == -huge then return tostring(x) end
    for digits = 14, 17 do
        local s = format("%." .. digits .. "g", x)
        if tonumber(s) == x then return s end
    end
end

local function encode(args, n)
    local parts = { "*", n, "\r\n" }
    for i = 1, n do
        local a = args[i]
        if type(a) ~= "string" then
            if type(a) == "number" then a = number_arg(a)
            elseif type(a) == "boolean" then a = tostring(a)
            else error("redis: argument #" .. i .. " is a " .. type(a), 3) end
        end
        parts[#parts + 1] = "$"
        parts[#parts + 1] = #a
        parts[#parts + 1] = "\r\n"
        parts[#parts + 1] = a
        parts[#parts + 1] = "\r\n"
    end
    return concat(parts)
end

local read_reply

-- Returns value, or nil, err (a Redis error reply), or nil, err, true (I/O).
read_reply = function(sock)
    local line, err = sock:receive("*l")
    if not line then return nil, err, true end
    local kind, rest = byte(line), sub(line, 2)
    if kind == 43 then          -- '+' status
        return rest
    elseif kind == 45 then      -- '-' error
        return nil, rest
    elseif kind == 58 then      -- ':' integer
        return tonumber(rest)
    elseif kind == 36 then      -- '$' bulk
        local n = tonumber(rest)
        if not n then return nil, "bad bulk length: " .. rest, true end
        if n < 0 then return null end
        local data, rerr = sock:receive(n + 2)
        if not data then return nil, rerr, true end
        return sub(data, 1, n)
    elseif kind == 42 then      -- '*' array
        local n = tonumber(rest)
        if not n then return nil, "bad array length: " .. rest, true end
        if n < 0 then return null end
        local list = {}
        for i = 1, n do
            local v, verr, io = read_reply(sock)
            if io then return nil, verr, true end
            if v == nil then v = { err = verr } end   -- an error inside an array
            list[i] = v
        end
        return list
    end
    return nil, "bad reply: " .. line, true
end

local function top(v, err, io)
    if v == null then return nil end
    return v, err, io
end

-- A pooled connection carries its AUTH and SELECT: the pool key names both,
-- so a connect for another password or db never gets it. The password goes in
-- as a keyed hash (a pool key shows in tostring(sock)).
local pool_secret = core.random_token(32)

local function pool_key(host, port, opts)
    if opts.pool then return opts.pool end
    local key = host .. ":" .. port .. ":db=" .. tostring(opts.db or 0)
    if opts.password then
        key = key .. ":auth=" .. core.b64url_encode(core.hmac_sha256(pool_secret, opts.password))
    end
    return key
end

function _M.connect(opts)
    opts = opts or {}
    local host, port = opts.host or "127.0.0.1", opts.port or 6379
    local sock = lubeck_tcp()
    sock:settimeout(opts.timeout or 1000)
    local ok, err = sock:connect(host, port, { pool = pool_key(host, port, opts) })
    if not ok then return nil, err end
    local client = setmetatable({ sock = sock }, Client)
    if sock:getreusedtimes() == 0 then
        if opts.password then
            local res, aerr = client:call("AUTH", opts.password)
            if not res then sock:close(); return nil, aerr end
        end
        if opts.db then
            local res, derr = client:call("SELECT", opts.db)
            if not res then sock:close(); return nil, derr end
        end
    end
    return client
end

function Client:call(...)
    local sock = self.sock
    local n = select("#", ...)
    local ok, err = sock:send(encode({ ... }, n))
    if not ok then return nil, err end
    local v, rerr, io = read_reply(sock)
    if io then sock:close() end
    return top(v, rerr)
end

-- Queues the commands fn issues on p, sends them in one write, and returns the
-- list of replies (an error reply reads as { err = "..." }).
function Client:pipeline(fn)
    local queued = {}
    local p = setmetatable({}, { __index = function(_, name)
        return function(_, ...)
            queued[#queued + 1] = encode({ upper(name), ... }, select("#", ...) + 1)
        end
    end })
    fn(p)
    if #queued == 0 then return {} end
    local ok, err = self.sock:send(concat(queued))
    if not ok then return nil, err end
    local replies = {}
    for i = 1, #queued do
        local v, rerr, io = read_reply(self.sock)
        if io then self.sock:close(); return nil, rerr end
        if v == nil then v = { err = rerr } end
        replies[i] = v
    end
    return replies
end

-- Returns the connection to the host's pool for the next connect to the same
-- host and port.
function Client:keepalive(idle_ms, pool_size)
    return self.sock:setkeepalive(idle_ms, pool_size)
end

function Client:close()
    return self.sock:close()
end

return _M
