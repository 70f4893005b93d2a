-- The end-to-end test app for cosocket TLS, driven by tests/e2e/test_tls.py
-- against TLS servers the test runs on loopback with certificates it makes.
-- LUBECK_TEST_CA (when set) is the test's CA, trusted through tls.ca.
local lubeck = require "lubeck"
local redis = require "lubeck.redis"
local cjson = require "cjson"

local ca = os.getenv("LUBECK_TEST_CA")
local app = lubeck.app{ name = "tls", tls = ca and { ca = ca } or nil }

-- ?port=&name=&verify=0|1: connects, handshakes, reads the server's first
-- line (it says whether the session was reused) and echoes one line.
local sessions = {}
app:get("/handshake", function(req)
    local sock = lubeck.tcp()
    sock:settimeout(2000)
    assert(sock:connect("127.0.0.1", tonumber(req:arg("port"))))
    local reuse = req:arg("reuse") and sessions[req:arg("reuse")] or nil
    local session, err = sock:sslhandshake(reuse, req:arg("name"), req:arg("verify") ~= "0")
    if not session then return { err = err } end
    local hello = sock:receive()
    sock:send("ping\n")
    local echo = sock:receive()
    sock:close()
    if req:arg("keep") then sessions[req:arg("keep")] = session end
    return { hello = hello, echo = echo, session = type(session) }
end)

-- lubeck.redis over TLS (redis-server's tls-port), and the pool keeps the
-- TLS connection.
app:get("/redis", function(req)
    local r, err = redis.connect{ port = tonumber(req:arg("port")), ssl = true,
                                  server_name = req:arg("name") or "localhost" }
    if not r then return { err = err } end
    local out = { reused = r.sock:getreusedtimes(), set = r:set("tls:k", "v"), get = r:get("tls:k") }
    out.kept = r:keepalive()
    return out
end)

-- A plain GET and a TLS GET, for the benchmark (?tls=1).
app:get("/bench_get", function(req)
    local r, err = redis.connect{ port = tonumber(req:arg("port")), ssl = req:arg("tls") == "1",
                                  server_name = "localhost" }
    if not r then return 502, { err = err } end
    local v = r:get("tls:k")
    if req:arg("pool") then r:keepalive() else r:close() end
    return v or cjson.null
end)

return app
