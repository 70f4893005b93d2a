-- A Redis client (RESP2) on lubeck's cosockets: each command suspends only the
-- calling request's coroutine. Two ways to hold it:
--   local redis = require "lubeck.redis"
--   local r = assert(redis.connect{ host = "127.0.0.1", port = 6379, password = pw, db = 1 })
--   r:set("k", "v"); local v = r:get("k")
--   local replies = r:pipeline(function(p) p:incr("n"); p:get("n") end)
--   r:keepalive()      -- back to the pool (or r:close())
-- or lua-resty-redis's way (the same client; what resty.redis code calls):
--   local red = redis:new(); red:set_timeouts(1000, 1000, 1000)
--   local ok, err = red:connect("127.0.0.1", 6379 [, { ssl = true, password = ..., db = ... }])
--   red:init_pipeline(); ...; local results = red:commit_pipeline()
--   red:subscribe("ch"); local msg = red:read_reply(); red:set_keepalive(10000, 100)
-- Replies: status → string ("OK"), integer → number, bulk → string, array →
-- table, a nil bulk → redis.null inside arrays; at the top level nil from
-- redis.connect's clients and redis.null (== ngx.null) from redis:new()'s, as
-- resty.redis code expects. An error reply → nil, "ERR …" (false, "ERR …" for
-- redis:new()'s clients). I/O failures close the connection. A method that is
-- not a Redis command is an error, not a request; r:call(name, ...) sends any.
local core = require "lubeck.core"
local cjson = require "cjson"

local lubeck_tcp = core.tcp
local setmetatable, type, tostring, tonumber, error, select, rawget = setmetatable, type, tostring,
    tonumber, error, select, rawget
local concat, upper, lower, sub, byte = table.concat, string.upper, string.lower, string.sub, string.byte
local format, floor, huge, pairs = string.format, math.floor, math.huge, pairs

local _M = { _VERSION = "0.2" }
local null = cjson.null   -- the same value as ngx.null
_M.null = null

-- Redis 7's commands (COMMAND LIST): r:<name>(...) sends one of these.
local COMMANDS = {}
for name in ([[
acl append asking auth bgrewriteaof bgsave bitcount bitfield bitfield_ro bitop bitpos blmove blmpop
blpop brpop brpoplpush bzmpop bzpopmax bzpopmin client cluster command config copy dbsize debug
decr decrby del discard dump echo eval eval_ro evalsha evalsha_ro exec exists expire expireat
expiretime failover fcall fcall_ro flushall flushdb function geoadd geodist geohash geopos
georadius georadius_ro georadiusbymember georadiusbymember_ro geosearch geosearchstore get getbit
getdel getex getrange getset hdel hello hexists hget hgetall hincrby hincrbyfloat hkeys hlen hmget
hmset hrandfield hscan hset hsetnx hstrlen hvals incr incrby incrbyfloat info keys lastsave latency
lcs lindex linsert llen lmove lmpop lolwut lpop lpos lpush lpushx lrange lrem lset ltrim memory
mget migrate module monitor move mset msetnx multi object persist pexpire pexpireat pexpiretime
pfadd pfcount pfdebug pfmerge pfselftest ping psetex psubscribe psync pttl publish pubsub
punsubscribe quit randomkey readonly readwrite rename renamenx replconf replicaof reset restore
role rpop rpoplpush rpush rpushx sadd save scan scard script sdiff sdiffstore select
set setbit setex setnx setrange shutdown sinter sintercard sinterstore sismember slaveof slowlog
smembers smismember smove sort sort_ro spop spublish srandmember srem sscan ssubscribe strlen
subscribe substr sunion sunionstore sunsubscribe swapdb sync time touch ttl type unlink unsubscribe
unwatch wait watch xack xadd xautoclaim xclaim xdel xgroup xinfo xlen xpending xrange xread
xreadgroup xrevrange xsetid xtrim zadd zcard zcount zdiff zdiffstore zincrby zinter zintercard
zinterstore zlexcount zmpop zmscore zpopmax zpopmin zrandmember zrange zrangebylex zrangebyscore
zrangestore zrank zrem zremrangebylex zremrangebyrank zremrangebyscore zrevrange zrevrangebylex
zrevrangebyscore zrevrank zscan zscore zunion zunionstore]]):gmatch("%S+") do
    COMMANDS[name] = true
end

-- Commands that put a connection into subscribed mode, and out of it.
local SUBSCRIBE = { subscribe = true, psubscribe = true, ssubscribe = true }
local UNSUBSCRIBE = { unsubscribe = true, punsubscribe = true, sunsubscribe = true }

local Client = {}

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
            else error("redis: argument #" .. i .. " is a " .. type(a), 4) end
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

-- A reply as the client's style returns it (see the top of this file).
local function top(self, v, err)
    if self.resty then
        if v == nil then return false, err end
        return v
    end
    if v == null then return nil end
    return v, err
end

-- A pooled connection carries its AUTH and SELECT: the pool key names both,
-- so a connect for another password or db never gets it. The password goes in
-- as a keyed hash (a pool key shows in tostring(sock)).
local pool_secret = core.crypto.random_token(32)
local b64url_encode, hmac_sha256 = core.crypto.b64url_encode, core.crypto.hmac_sha256

local function pool_key(host, port, opts)
    if opts.pool then return opts.pool end
    local key = host .. ":" .. tostring(port) .. ":db=" .. tostring(opts.db or 0)
    if opts.ssl then key = key .. ":tls=" .. tostring(opts.server_name or host) end
    if opts.password then
        key = key .. ":auth=" .. b64url_encode(hmac_sha256(pool_secret,
                                                          (opts.username or "") .. "\0" .. opts.password))
    end
    return key
end

local tls_sessions = {}   -- pool key → the TLS session to resume

local function new_client(resty)
    local sock = lubeck_tcp()
    sock:settimeout(1000)
    return setmetatable({ sock = sock, resty = resty }, Client)
end

-- redis:new() → a client to connect (resty.redis's way)
function _M.new()
    return new_client(true)
end

-- Connects, then (on a fresh connection) TLS, AUTH and SELECT as opts ask.
-- opts: password, username, db, ssl, ssl_verify (default true), server_name,
-- pool, pool_size, backlog.
local function open(self, host, port, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("redis: connect options must be a table", 3) end
    local sock = self.sock
    local ok, err
    local connect_opts = { pool = pool_key(host, port, opts), pool_size = opts.pool_size,
                           backlog = opts.backlog }
    if sub(host, 1, 5) == "unix:" then ok, err = sock:connect(host, connect_opts)
    else ok, err = sock:connect(host, port or 6379, connect_opts) end
    if not ok then return nil, err end
    if opts.ssl then
        -- the last session for this pool resumes the next handshake (no full
        -- handshake for each new connection)
        local verify = opts.ssl_verify ~= false
        local session
        session, err = sock:sslhandshake(tls_sessions[connect_opts.pool], opts.server_name
                                         or (verify and host or nil), verify)
        if not session then sock:close(); return nil, err end
        tls_sessions[connect_opts.pool] = session
    end
    if sock:getreusedtimes() == 0 then
        if opts.password then
            local res, aerr
            if opts.username then res, aerr = self:call("AUTH", opts.username, opts.password)
            else res, aerr = self:call("AUTH", opts.password) end
            if not res then sock:close(); return nil, aerr end
        end
        if opts.db then
            local res, derr = self:call("SELECT", opts.db)
            if not res then sock:close(); return nil, derr end
        end
    end
    return 1
end

-- redis.connect{ host, port, timeout, password, db, ssl, ... } → client | nil, err
function _M.connect(opts)
    opts = opts or {}
    local client = new_client(false)
    client.sock:settimeout(opts.timeout or 1000)
    local ok, err = open(client, opts.host or "127.0.0.1", opts.port or 6379, opts)
    if not ok then return nil, err end
    return client
end

-- red:connect(host, port [, opts]) | red:connect("unix:/path" [, opts]) |
-- red:connect{ host = ..., ... } → 1 | nil, err
function Client:connect(host, port, opts)
    if type(host) == "table" then
        opts = host
        return open(self, opts.host or "127.0.0.1", opts.port or 6379, opts)
    end
    if type(port) == "table" then opts, port = port, nil end
    return open(self, host, port, opts)
end

function Client:set_timeout(ms) return self.sock:settimeout(ms) end
function Client:set_timeouts(connect_ms, send_ms, read_ms)
    return self.sock:settimeouts(connect_ms, send_ms, read_ms)
end
function Client:get_reused_times() return self.sock:getreusedtimes() end

-- Sends one command and reads its reply (or queues it in a pipeline).
function Client:call(...)
    local n = select("#", ...)
    local req = encode({ ... }, n)
    local queued = rawget(self, "queued")
    if queued then
        queued[#queued + 1] = req
        return self.resty and "OK" or true
    end
    local sock = self.sock
    local ok, err = sock:send(req)
    if not ok then return nil, err end
    local v, rerr, io = read_reply(sock)
    if io then sock:close(); return nil, rerr end
    if type(v) == "table" then   -- (un)subscribe replies are arrays: no cost for the rest
        local name = lower(tostring((...)))
        if SUBSCRIBE[name] then self.subscribed = true
        elseif UNSUBSCRIBE[name] and v[3] == 0 then self.subscribed = nil end
    end
    return top(self, v, rerr)
end

-- hmset(key, { field = value, ... }) as well as hmset(key, field, value, ...)
function Client:hmset(key, ...)
    if select("#", ...) == 1 and type((...)) == "table" then
        local args = {}
        for field, value in pairs((...)) do
            args[#args + 1] = field
            args[#args + 1] = value
        end
        return self:call("HMSET", key, unpack(args))
    end
    return self:call("HMSET", key, ...)
end

-- Queues the commands fn issues on p, sends them in one write, and returns the
-- list of replies (an error reply reads as { err = "..." }).
function Client:pipeline(fn)
    local queued = {}
    local p = setmetatable({}, { __index = function(_, name)
        return function(_, ...)
            if name == "call" then
                queued[#queued + 1] = encode({ ... }, select("#", ...))
            else
                queued[#queued + 1] = encode({ upper(name), ... }, select("#", ...) + 1)
            end
        end
    end })
    fn(p)
    return self:send_queued(queued)
end

function Client:send_queued(queued)
    if #queued == 0 then return {} end
    local ok, err = self.sock:send(queued)
    if not ok then return nil, err end
    local replies = {}
    for i = 1, #queued do
        local v, rerr, io = read_reply(self.sock)
        if io then self.sock:close(); return nil, rerr end
        if v == nil then v = self.resty and { false, rerr } or { err = rerr } end
        replies[i] = v
    end
    return replies
end

-- resty.redis's pipeline: init_pipeline(), commands (each answers "OK"),
-- commit_pipeline() → the replies (an error reply: { false, "ERR ..." }).
function Client:init_pipeline()
    self.queued = {}
end

function Client:cancel_pipeline()
    self.queued = nil
end

function Client:commit_pipeline()
    local queued = rawget(self, "queued")
    if not queued then return nil, "no pipeline" end
    self.queued = nil
    if #queued == 0 then return nil, "no more cmds" end
    return self:send_queued(queued)
end

-- The next message on a subscribed connection: { "message", channel, data } |
-- nil, "timeout" (the connection stays usable) | nil, err.
function Client:read_reply()
    if not rawget(self, "subscribed") then return nil, "not subscribed" end
    local v, err, io = read_reply(self.sock)
    if io then
        if err ~= "timeout" then self.sock:close() end
        return nil, err
    end
    return top(self, v, err)
end

-- Returns the connection to the host's pool for the next connect with the
-- same host, port, password and db. A connection still subscribed, or in a
-- pipeline, is closed instead.
function Client:keepalive(idle_ms, pool_size)
    if rawget(self, "subscribed") then
        self.sock:close()
        return nil, "subscribed state"
    end
    if rawget(self, "queued") then
        self.sock:close()
        return nil, "pipeline not committed"
    end
    return self.sock:setkeepalive(idle_ms, pool_size)
end
Client.set_keepalive = Client.keepalive

function Client:close()
    return self.sock:close()
end

-- Any Redis command by name: r:hset(...), r:lpush(...), ...; anything else
-- is a mistake in the caller's code, not something to send to Redis.
Client.__index = function(self, name)
    local method = Client[name]
    if method then return method end
    if type(name) ~= "string" or not COMMANDS[lower(name)] then
        error("redis: no such command or method '" .. tostring(name) .. "' (r:call(name, ...) sends any command)", 2)
    end
    local cmd = upper(name)
    local f = function(client, ...) return client:call(cmd, ...) end
    Client[name] = f
    return f
end

return _M
