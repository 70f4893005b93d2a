-- The end-to-end test app for lubeck.redis, driven by tests/e2e/test_redis.py
-- against a redis-server the test starts. Its port comes from
-- LUBECK_TEST_REDIS_PORT, or ?port= for a server of the test's own.
local lubeck = require "lubeck"
local redis = require "lubeck.redis"
local cjson = require "cjson"

local app = lubeck.app{ name = "redis" }

local null = cjson.null
local function json_value(v)
    if v == nil or v == redis.null then return null end
    if type(v) == "table" then
        local out = {}
        for k, x in pairs(v) do out[k] = json_value(x) end
        return out
    end
    return v
end

local function connect(req, timeout)
    return redis.connect{
        port = tonumber(req:arg("port") or os.getenv("LUBECK_TEST_REDIS_PORT")),
        timeout = timeout,
    }
end

local function fail(where, err) return 502, { where = where, err = err } end

app:get("/commands", function(req)
    local r, err = connect(req)
    if not r then return fail("connect", err) end
    local key = req:arg("key", "k")
    local out = {}
    out.set = r:set(key .. ":s", "hello")
    out.get = r:get(key .. ":s")
    out.missing = json_value(r:get(key .. ":nope"))
    r:del(key .. ":n", key .. ":h", key .. ":l")
    out.incr = { r:incr(key .. ":n"), r:incr(key .. ":n"), r:incrby(key .. ":n", 40) }
    out.hset = r:hset(key .. ":h", "a", "1", "b", 2)
    out.hgetall = r:hgetall(key .. ":h")
    out.rpush = r:rpush(key .. ":l", "x", "y", "z")
    out.lrange = r:lrange(key .. ":l", 0, -1)
    out.empty = json_value(r:lrange(key .. ":none", 0, -1))
    out.binary = r:set(key .. ":b", "a\r\nb\0c") and r:get(key .. ":b") == "a\r\nb\0c"
    r:keepalive()
    return out
end)

app:get("/errors", function(req)
    local r, err = connect(req)
    if not r then return fail("connect", err) end
    r:set("errkey", "not a number")
    local v1, e1 = r:incr("errkey")
    local v2, e2 = r:call("NOSUCHCOMMAND", "x")
    local v3, e3 = r:lpush("errkey", "x")
    local after = r:ping()                       -- the connection is still usable
    r:keepalive()
    return { v1 = json_value(v1), e1 = e1, v2 = json_value(v2), e2 = e2, v3 = json_value(v3), e3 = e3,
             after = after }
end)

app:get("/pipeline", function(req)
    local r, err = connect(req)
    if not r then return fail("connect", err) end
    r:del("p:n", "p:l")
    local replies, perr = r:pipeline(function(p)
        p:incr("p:n")
        p:incr("p:n")
        p:get("p:n")
        p:call("NOSUCHCOMMAND")
        p:rpush("p:l", "a", "b")
        p:lrange("p:l", 0, -1)
        p:get("p:missing")
    end)
    if not replies then return fail("pipeline", perr) end
    r:keepalive()
    return { replies = json_value(replies), n = #replies }
end)

-- Big integers go over the wire as written, not as "1.2345678901234e+14".
app:get("/numbers", function(req)
    local r, err = connect(req)
    if not r then return fail("connect", err) end
    r:set("num:big", 123456789012345)
    r:set("num:float", 0.1)
    r:del("num:ctr")
    local incr, ierr = r:incrby("num:ctr", 9007199254740991)
    -- as a string: the JSON encoder, like tostring, keeps only 14 digits
    local out = { big = r:get("num:big"), float = r:get("num:float"),
                  incr = incr and string.format("%d", incr), err = ierr }
    r:keepalive()
    return out
end)

app:get("/pooled", function(req)
    local r, err = connect(req)
    if not r then return fail("connect", err) end
    local reused = r.sock:getreusedtimes()
    local pong = r:ping()
    local kept = r:keepalive(10000, 5)
    return { pong = pong, reused = reused, kept = kept }
end)

-- Waits in BLPOP: the test kills the server meanwhile.
app:get("/blpop", function(req)
    local r, err = connect(req, 10000)
    if not r then return fail("connect", err) end
    local started = lubeck.now()
    local v, berr = r:blpop("never:filled", 10)
    return { value = json_value(v), err = berr, waited = lubeck.now() - started }
end)

-- ?password=&db=&key=: connects with those, reads key (and sets it to
-- ?set= when given), then puts the connection back in the pool.
app:get("/session", function(req)
    local r, err = redis.connect{
        port = tonumber(req:arg("port") or os.getenv("LUBECK_TEST_REDIS_PORT")),
        password = req:arg("password"), db = tonumber(req:arg("db")),
    }
    if not r then return fail("connect", err) end
    local out = { reused = r.sock:getreusedtimes() }
    if req:arg("set") then r:set(req:arg("key"), req:arg("set")) end
    out.value = json_value(r:get(req:arg("key")))
    out.kept = r:keepalive(10000, 5)
    return out
end)

-- The pool option of a raw cosocket: ?pool= names the pool (default host:port).
app:get("/raw_pool", function(req)
    local sock = lubeck.tcp()
    local port = tonumber(req:arg("port") or os.getenv("LUBECK_TEST_REDIS_PORT"))
    local ok, err = sock:connect("127.0.0.1", port, { pool = req:arg("pool") })
    if not ok then return fail("connect", err) end
    local reused = sock:getreusedtimes()
    sock:send("PING\r\n")
    local pong = sock:receive("*l")
    return { reused = reused, pong = pong, kept = sock:setkeepalive(10000, 5) }
end)

-- Leaves a reply unread (?where=buffer: in lubeck's buffer; else in the
-- kernel's) and tries to pool the connection.
app:get("/dirty", function(req)
    local sock = lubeck.tcp()
    local port = tonumber(os.getenv("LUBECK_TEST_REDIS_PORT"))
    local ok, err = sock:connect("127.0.0.1", port, { pool = "dirty" })
    if not ok then return fail("connect", err) end
    local out = { reused = sock:getreusedtimes() }
    if req:arg("where") == "buffer" then
        sock:send("PING\r\nECHO tail\r\n")
        lubeck.sleep(0.05)                       -- both replies are in
        out.first = sock:receive("*l")           -- reads both; returns one
    else
        sock:send("ECHO tail\r\n")
        lubeck.sleep(0.05)                       -- the reply waits in the kernel
    end
    out.kept, out.err = sock:setkeepalive(10000, 5)
    return json_value(out)
end)

-- Pools a connection, has the server close it, and connects again at once.
app:get("/killed_in_pool", function(req)
    local port = tonumber(os.getenv("LUBECK_TEST_REDIS_PORT"))
    local a = lubeck.tcp()
    assert(a:connect("127.0.0.1", port, { pool = "killed" }))
    a:send("CLIENT ID\r\n")
    local id = a:receive("*l"):sub(2)
    assert(a:setkeepalive(10000, 5))
    local killer = lubeck.tcp()
    assert(killer:connect("127.0.0.1", port))
    killer:send("CLIENT KILL ID " .. id .. "\r\n")
    local killed = killer:receive("*l")
    killer:close()
    local b = lubeck.tcp()
    assert(b:connect("127.0.0.1", port, { pool = "killed" }))
    local reused = b:getreusedtimes()
    b:send("PING\r\n")
    local pong, err = b:receive("*l")
    b:close()
    return json_value{ killed = killed, reused = reused, pong = pong, err = err }
end)

-- lubeck.redis called the way resty.redis code calls it.
app:get("/resty_way", function(req)
    local red = redis:new()
    red:set_timeouts(1000, 1000, 1000)
    local ok, err
    if req:arg("unix") then ok, err = red:connect("unix:" .. req:arg("unix"))
    else ok, err = red:connect("127.0.0.1", tonumber(os.getenv("LUBECK_TEST_REDIS_PORT"))) end
    if not ok then return fail("connect", err) end
    local out = { connected = ok }
    out.set = red:set("dog", "an animal")
    out.get = red:get("dog")
    out.missing_is_null = red:get("no:such:key") == redis.null
    out.hmset = red:hmset("animals", { dog = "bark", cat = "meow" })
    out.hget = red:hget("animals", "cat")
    red:init_pipeline()
    out.queued = red:set("cat", "Marry")
    red:get("cat")
    red:incr("dog")
    local results = red:commit_pipeline()
    out.pipeline = { results[1], results[2], results[3][1], results[3][2] }
    red:init_pipeline()
    red:set("cat", "never sent")
    red:cancel_pipeline()
    out.after_cancel = red:get("cat")
    local v, e = red:incr("dog")
    out.incr = { v, e }
    local typo_ok, typo = pcall(function() return red:sett("dog", "x") end)
    out.typo = { typo_ok, typo }
    out.reused = red:get_reused_times()
    out.kept = red:set_keepalive(10000, 100)
    return json_value(out)
end)

-- subscribe/read_reply on a redis:new() client; a publisher on redis.connect's.
app:get("/pubsub", function()
    local port = tonumber(os.getenv("LUBECK_TEST_REDIS_PORT"))
    local sub = redis:new()
    sub:set_timeout(2000)
    assert(sub:connect("127.0.0.1", port))
    local out = { subscribed = sub:subscribe("news") }
    local pub = assert(redis.connect{ port = port })
    out.published = pub:publish("news", "hello")
    pub:keepalive()
    out.message = sub:read_reply()
    sub:set_timeout(50)
    out.timeout = { sub:read_reply() }
    out.kept = { sub:set_keepalive() }      -- still subscribed: closed, not pooled
    return json_value(out)
end)

app:get("/stats", function() return lubeck.stats() end)

return app
