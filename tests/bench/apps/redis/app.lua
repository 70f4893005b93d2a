-- tests/bench/redis_bench.py: one Redis GET per request, several ways.
-- LUBECK_BENCH_REDIS_PORT: the plain port; LUBECK_BENCH_REDIS_TLS_PORT: TLS.
-- luacheck: read globals ngx
require "lubeck.ngx"
local lubeck = require "lubeck"
local redis = require "lubeck.redis"
local resty = require "resty.redis"

local app = lubeck.app{ name = "redis-bench", tls = { ca = os.getenv("LUBECK_BENCH_CA") } }
local port = tonumber(os.getenv("LUBECK_BENCH_REDIS_PORT"))
local tls_port = tonumber(os.getenv("LUBECK_BENCH_REDIS_TLS_PORT"))

local function fail(err)
    ngx.log(ngx.ERR, "redis bench: ", err)   -- the bench stops on a non-2xx answer: say why
    return 502, { err = err }
end

-- lubeck.redis, pooled connection
app:get("/lubeck", function()
    local r, err = redis.connect{ port = port }
    if not r then return fail(err) end
    local v = r:get("bench:k")
    r:keepalive()
    return v
end)

-- Debian's resty.redis, unmodified, pooled connection
app:get("/resty", function()
    local red = resty:new()
    red:set_timeout(1000)
    local ok, err = red:connect("127.0.0.1", port)
    if not ok then return fail(err) end
    local v = red:get("bench:k")
    red:set_keepalive(10000, 100)
    return v
end)

-- A new connection per request: plain, then TLS (handshake included).
app:get("/plain_new", function()
    local r, err = redis.connect{ port = port }
    if not r then return fail(err) end
    local v = r:get("bench:k")
    r:close()
    return v
end)

app:get("/tls_new", function()
    local r, err = redis.connect{ port = tls_port, ssl = true, server_name = "localhost" }
    if not r then return fail(err) end
    local v = r:get("bench:k")
    r:close()
    return v
end)

app:get("/tls_pooled", function()
    local r, err = redis.connect{ port = tls_port, ssl = true, server_name = "localhost" }
    if not r then return fail(err) end
    local v = r:get("bench:k")
    r:keepalive()
    return v
end)

return app
