-- The end-to-end test app for lubeck.ngx: Debian's lua-nginx-* libraries,
-- unmodified (tests/e2e/test_ngx.py puts them on LUA_PATH), called the way
-- their READMEs show, inside lubeck handlers, against servers the test runs.
-- Ports come in the query string.
-- luacheck: read globals ngx
require "lubeck.ngx"
local lubeck = require "lubeck"
local cjson = require "cjson"

local app = lubeck.app{ name = "ngx" }

local function port(req, name) return tonumber(req:arg(name or "port")) end
local function nulls(v)   -- ngx.null and holes as JSON null
    if v == ngx.null or v == nil then return cjson.null end
    if type(v) == "table" then
        local out = {}
        for k, x in pairs(v) do out[k] = nulls(x) end
        return out
    end
    return v
end

-- lua-resty-redis: connect, set/get, a missing key, hmset with a table,
-- a pipeline, an error reply, the pool.
app:get("/redis", function(req)
    local redis = require "resty.redis"
    local red = redis:new()
    red:set_timeout(1000)
    local ok, err = red:connect("127.0.0.1", port(req))
    if not ok then return 502, { err = err } end
    local out = {}
    out.reused = red:get_reused_times()
    out.set = red:set("dog", "an animal")
    out.get = red:get("dog")
    out.missing = red:get("cat") == ngx.null
    out.hmset = red:hmset("animals", { dog = "bark", cat = "meow" })
    out.hget = red:hget("animals", "cat")
    red:init_pipeline()
    red:set("cat", "Marry")
    red:set("horse", "Bob")
    red:get("cat")
    red:get("horse")
    out.pipeline = red:commit_pipeline()
    local v, e = red:incr("dog")
    out.incr_err = e
    out.incr = v            -- an error reply is false, err
    out.kept = red:set_keepalive(10000, 10)
    return nulls(out)
end)

-- Over a unix socket.
app:get("/redis_unix", function(req)
    local redis = require "resty.redis"
    local red = redis:new()
    local ok, err = red:connect("unix:" .. req:arg("path"))
    if not ok then return 502, { err = err } end
    local pong = red:ping()
    red:set_keepalive()
    return { pong = pong }
end)

-- The same file under Debian's own name.
app:get("/redis_debian_name", function()
    return { same = require("nginx.redis") == require("resty.redis") }
end)

-- Pub/sub: one connection subscribes and reads, another publishes.
app:get("/redis_pubsub", function(req)
    local redis = require "resty.redis"
    local sub, pub = redis:new(), redis:new()
    sub:set_timeout(2000)
    assert(sub:connect("127.0.0.1", port(req)))
    assert(pub:connect("127.0.0.1", port(req)))
    local subscribed = sub:subscribe("news")
    local published = pub:publish("news", "hello")
    local message = sub:read_reply()
    sub:unsubscribe("news")
    sub:close()
    pub:set_keepalive()
    return nulls{ subscribed = subscribed, published = published, message = message }
end)

-- lua-resty-memcached
app:get("/memcached", function(req)
    local memcached = require "resty.memcached"
    local memc = assert(memcached:new())
    memc:set_timeout(1000)
    local ok, err = memc:connect("127.0.0.1", port(req))
    if not ok then return 502, { err = err } end
    local out = {}
    out.flush = memc:flush_all()
    out.set = memc:set("dog", 32)
    local value, flags = memc:get("dog")
    out.value, out.flags = value, flags
    out.add_again = select(2, memc:add("dog", 1))
    out.incr = memc:incr("dog", 10)
    out.missing = memc:get("cat") == nil
    out.kept = memc:set_keepalive(10000, 10)
    return nulls(out)
end)

-- lua-resty-websocket's client, against this app's own WebSocket route,
-- through Mongrel2.
local Echo = lubeck.WebSocketHandler:extend()
function Echo:on_message(message) self:send("echo: " .. message) end
app:route("/ws", Echo)

app:get("/websocket", function(req)
    local client = require "resty.websocket.client"
    local wb, err = client:new{ timeout = 2000 }
    if not wb then return 502, { err = err } end
    local ok, cerr = wb:connect("ws://127.0.0.1:" .. port(req) .. "/ws")
    if not ok then return 502, { err = cerr } end
    local out = {}
    out.sent = wb:send_text("hello")
    out.data, out.type = wb:recv_frame()
    wb:send_ping("p")
    local pong, ptype = wb:recv_frame()
    out.pong = ptype .. ":" .. tostring(pong)
    out.closed = wb:send_close()
    return nulls(out)
end)

-- lua-resty-dns, against a dnsmasq of the test's own
app:get("/dns", function(req)
    local resolver = require "resty.dns.resolver"
    local r, err = resolver:new{
        nameservers = { { "127.0.0.1", port(req) } },
        retrans = 2, timeout = 2000,
    }
    if not r then return 502, { err = err } end
    local out = {}
    local answers, qerr = r:query("app.lubeck.test", { qtype = r.TYPE_A })
    out.udp = answers and answers[1] and answers[1].address or qerr
    local tcp = r:tcp_query("app.lubeck.test", { qtype = r.TYPE_A })
    out.tcp = tcp and tcp[1] and tcp[1].address
    local none = r:query("nothing.lubeck.test")
    out.nxdomain = none and none.errcode
    return nulls(out)
end)

-- lua-resty-string: digests and hex through ngx_lua's FFI names.
app:get("/string", function()
    local resty_str = require "resty.string"
    local resty_sha1 = require "resty.sha1"
    local sha1 = resty_sha1:new()
    sha1:update("hello")
    return { sha1 = resty_str.to_hex(sha1:final()), md5 = ngx.md5("hello") }
end)

-- ngx.* itself
app:get("/ngx", function()
    local m = ngx.re.match("hello 2026-12-04", [[(?<year>\d{4})-(\d\d)-(\d\d)]], "jo")
    local from, to = ngx.re.find("hello world", "w(or)", "jo", nil, 1)
    local words = {}
    for w in ngx.re.gmatch("one two  three", [[\w+]]) do words[#words + 1] = w[0] end
    local subbed, n = ngx.re.gsub("a1b22c333", [[\d+]], "<$0>")
    local fsub = ngx.re.sub("hello", "l+", function(c) return c[0]:upper() end)
    local tsub = ngx.re.gsub("a$1 b", [[(\w)(\$1)?]], "[${1}$$]")
    local bad, err = ngx.re.match("x", "(")
    return nulls{
        match = { m[0], m[1], m[2], m.year }, find = { from, to },
        words = words, gsub = { subbed, n }, fsub = fsub, tsub = tsub, bad = bad, err = err,
        md5 = ngx.md5("abc"), sha1 = ngx.encode_base64(ngx.sha1_bin("abc")),
        hmac = ngx.encode_base64(ngx.hmac_sha1("key", "The quick brown fox jumps over the lazy dog")),
        b64 = ngx.encode_base64("hi?"), unb64 = ngx.decode_base64("aGk/"),
        notb64 = ngx.decode_base64("@@"), crc = ngx.crc32_long("hello"),
        phase = ngx.get_phase(), pid = ngx.worker.pid() > 0, null = ngx.null == cjson.null,
        escaped = ngx.escape_uri("a b/c"), time = math.abs(ngx.time() - os.time()) <= 1,
        say = select(2, pcall(ngx.say, "x")),
    }
end)

return app
