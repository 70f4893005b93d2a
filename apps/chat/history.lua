-- The room's recent messages, kept where every process serving the app sees
-- them: lubeck.shared (all the workers of one host) without Redis, Redis when
-- channels cross hosts (app.redis, from --redis or the app's redis option).
--   local history = require("history").new(app.redis, KEEP)
--   history:add(name, text)  → id | nil, err
--   history:after(id)        → { {id=, name=, text=, at=}, ... } oldest first | nil, err
--   history:last()           → the newest id (0 before the first message) | nil, err
local lubeck = require "lubeck"
local redis = require "lubeck.redis"
local cjson = require "cjson"

local setmetatable, tonumber, tostring, ipairs, concat, max, floor, time =
    setmetatable, tonumber, tostring, ipairs, table.concat, math.max, math.floor, os.time

local _M = {}

-- ---- one host: lubeck.shared ------------------------------------------------
-- A shared entry holds ~470 bytes, so a message is a head ("h:ID": name, time,
-- how many parts) and its text in parts ("t:ID:N"). The parts go in first and
-- the head last: a head that is there means the whole message is.
local PART = 400

local Shared = {}
Shared.__index = Shared

function Shared:last()
    return self.dict:get("last") or 0
end

function Shared:add(name, text)
    local dict = self.dict
    local id, ierr = dict:incr("last", 1, 0)
    if not id then return nil, ierr end
    local parts = 0
    for at = 1, #text, PART do
        parts = parts + 1
        local ok, err = dict:set("t:" .. id .. ":" .. parts, text:sub(at, at + PART - 1))
        if not ok then return nil, err end
    end
    local ok, err = dict:set("h:" .. id, cjson.encode({ name = name, at = time(), parts = parts }))
    if not ok then return nil, err end
    local old = id - self.keep                     -- forget what fell out of the window
    local head = old > 0 and dict:get("h:" .. old)
    if head then
        dict:delete("h:" .. old)
        for n = 1, cjson.decode(head).parts do dict:delete("t:" .. old .. ":" .. n) end
    end
    return id
end

local function read_shared(dict, id)
    local head = dict:get("h:" .. id)
    if not head then return nil end
    head = cjson.decode(head)
    local parts = {}
    for n = 1, head.parts do
        parts[n] = dict:get("t:" .. id .. ":" .. n)
        if not parts[n] then return nil end        -- dropped from the window meanwhile
    end
    return { id = id, name = head.name, text = concat(parts), at = head.at }
end

-- Another worker may have taken an id and not yet written its message: the
-- news stop there, unless patient (the poll waited already): then it is skipped.
function Shared:after(since, patient)
    local last = self:last()
    local news = {}
    for id = max(since, last - self.keep) + 1, last do
        local m = read_shared(self.dict, id)
        if m then news[#news + 1] = m
        elseif not patient then break end
    end
    return news
end

-- ---- across hosts: Redis ----------------------------------------------------
-- An id from INCR and the message in a sorted set scored by id, in one script so
-- that no reader ever sees the id without its message.
local ADD = [[
local id = redis.call('INCR', KEYS[1])
local m = cjson.decode(ARGV[1])
m.id = id
redis.call('ZADD', KEYS[2], id, cjson.encode(m))
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[2]))
return id
]]

local Redis = {}
Redis.__index = Redis

local function parse_url(url)
    local rest = url:match("^redis://(.*)$")
    local password, where = rest:match("^:?([^@]*)@(.*)$")
    if where then rest = where end
    local host, port, db = rest:match("^([^:/]+):?(%d*)/?(%d*)$")
    return { host = host, port = tonumber(port) or 6379, db = tonumber(db), password = password }
end

function Redis:call(fn)
    local r, err = redis.connect(self.opts)
    if not r then return nil, "redis: " .. tostring(err) end
    local res, cerr = fn(r)
    if res == nil then r:close(); return nil, "redis: " .. tostring(cerr) end
    r:keepalive()
    return res
end

function Redis:last()
    local n, err = self:call(function(r)
        local v, gerr = r:get(self.key_last)
        if gerr then return nil, gerr end
        return v or "0"
    end)
    if not n then return nil, err end
    return tonumber(n)
end

function Redis:add(name, text)
    local m = cjson.encode({ name = name, text = text, at = time() })
    return self:call(function(r) return r:eval(ADD, 2, self.key_last, self.key_messages, m, self.keep) end)
end

function Redis:after(since)
    local list, err = self:call(function(r)
        return r:zrangebyscore(self.key_messages, "(" .. floor(since), "+inf")
    end)
    if not list then return nil, err end
    for i, m in ipairs(list) do list[i] = cjson.decode(m) end
    return list
end

function _M.new(redis_url, keep, prefix)
    prefix = prefix or "chat"
    if redis_url then
        return setmetatable({ opts = parse_url(redis_url), keep = keep,
            key_last = prefix .. ":last", key_messages = prefix .. ":messages" }, Redis)
    end
    return setmetatable({ dict = lubeck.shared(prefix), keep = keep }, Shared)
end

return _M
