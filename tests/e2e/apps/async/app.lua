-- The end-to-end test app for docs/reference.md, Waiting without blocking, driven through
-- a real Mongrel2 by tests/e2e/test_async.py. Cosocket routes take the port of
-- a TCP server the test runs (?port=); /counters and /stats let the test see
-- what handlers saw after their client had gone.
local lubeck = require "lubeck"
local cjson = require "cjson"

local app = lubeck.app{ name = "async" }

local counters = { closed = 0, woken = {} }
app:get("/counters", function() return counters end)
app:get("/stats", function() return lubeck.stats() end)
app:get("/", function() return "fast" end)

app:get("/sleep", function(req)
    local ok, err = lubeck.sleep(tonumber(req:arg("s", "1")))
    return { ok = ok, err = err }
end)

-- Long polls ---------------------------------------------------------------------

app:get("/wait", function(req)
    local value, err = lubeck.channel(req:arg("name", "room")):wait(tonumber(req:arg("timeout")))
    return { value = value, err = err }
end)

app:post("/publish", function(req)
    local body = req:json() or {}
    return { woken = lubeck.channel(req:arg("name", "room")):publish(body.value) }
end)

-- Waits until its client goes away (or 60 s), then records how it was woken.
app:get("/hang", function(req)
    local a, err
    if req:arg("on") == "channel" then
        a, err = lubeck.channel("nobody-publishes"):wait(60)
    elseif req:arg("on") == "tcp" then
        local sock = lubeck.tcp()
        sock:settimeout(60000)
        assert(sock:connect("127.0.0.1", tonumber(req:arg("port"))))
        sock:send("SILENT\n")
        a, err = sock:receive("*l")
    else
        a, err = lubeck.sleep(60)
    end
    counters.woken[#counters.woken + 1] = { tostring(a), tostring(err) }
    if err == "closed" then counters.closed = counters.closed + 1 end
    return "nobody reads this"
end)

-- Streaming --------------------------------------------------------------------

local Stream = lubeck.Handler:extend()
function Stream:get()
    local n, gap = tonumber(self:get_argument("n", "4")), tonumber(self:get_argument("gap", "0.3"))
    self:set_header("Content-Type", "text/plain")
    for i = 1, n do
        self:write(("chunk %d\n"):format(i))
        self:flush()
        if gap > 0 then lubeck.sleep(gap) end
    end
end
app:route("/stream", Stream)

-- Cosockets ----------------------------------------------------------------------

local function connect(req, host)
    local sock = lubeck.tcp()
    sock:settimeout(tonumber(req:arg("timeout_ms", "5000")))
    local ok, err = sock:connect(host or "127.0.0.1", tonumber(req:arg("port")))
    if not ok then return nil, err end
    return sock
end

local function fail(where, err) return 502, { where = where, err = err } end

-- "*l", byte counts and "*a" on one connection.
app:get("/tcp/patterns", function(req)
    local sock, err = connect(req)
    if not sock then return fail("connect", err) end
    local out = {}
    out.sent = sock:send("ECHO hello world\r\n")
    out.first5 = sock:receive(5)
    out.space = sock:receive(1)
    out.line = sock:receive("*l")
    sock:send("ECHO line two\n")
    out.line2 = sock:receive()
    sock:send("BYE last words\nand more")
    out.all = sock:receive("*a")
    out.after, out.after_err = sock:receive("*l")
    sock:close()
    return out
end)

-- A line the server never answers: receive times out, nil, "timeout".
app:get("/tcp/silent", function(req)
    local sock, err = connect(req)
    if not sock then return fail("connect", err) end
    sock:settimeout(tonumber(req:arg("wait_ms", "200")))
    sock:send("SILENT\n")
    local started = lubeck.now()
    local line, rerr, partial = sock:receive("*l")
    sock:close()
    return { line = line, err = rerr, partial = partial, waited = lubeck.now() - started }
end)

app:get("/tcp/connect", function(req)
    local sock, err = connect(req, req:arg("host"))
    if not sock then return { ok = false, err = err } end
    sock:send("ECHO via " .. req:arg("host", "?") .. "\n")
    local line, rerr = sock:receive()
    sock:close()
    return { ok = true, line = line, err = rerr }
end)

-- 10 MiB up, then 10 MiB down; the server reads and writes slowly.
app:get("/tcp/big", function(req)
    local size = tonumber(req:arg("bytes", tostring(10 * 1024 * 1024)))
    local sock, err = connect(req)
    if not sock then return fail("connect", err) end
    sock:settimeout(20000)
    local started = lubeck.now()
    local up = string.rep("0123456789abcdef", size / 16)
    local sent, serr = sock:send("SINK " .. size .. "\n" .. up)
    if not sent then return fail("send", serr) end
    local ack, aerr = sock:receive("*l")
    if not ack then return fail("ack", aerr) end
    sock:send("SEND " .. size .. "\n")
    local down, derr = sock:receive(size)
    if not down then return fail("receive", derr) end
    sock:close()
    return {
        sent = sent, ack = ack, received = #down,
        intact = down == string.rep("fedcba9876543210", size / 16),
        took = lubeck.now() - started,
    }
end)

-- One connection through the pool: setkeepalive hands it back for the next.
app:get("/tcp/pooled", function(req)
    local sock, err = connect(req)
    if not sock then return fail("connect", err) end
    local reused = sock:getreusedtimes()
    sock:send("ECHO pooled\n")
    local line, rerr = sock:receive()
    if not line then return fail("receive", rerr) end
    local ok, kerr = sock:setkeepalive(10000, 4)
    return { line = line, reused = reused, kept = ok, err = kerr }
end)

-- Never closed nor kept alive: it closes when the request ends.
app:get("/tcp/forgotten", function(req)
    local sock, err = connect(req)
    if not sock then return fail("connect", err) end
    sock:send("ECHO left open\n")
    return { line = sock:receive() }
end)

-- Mongrel2 broadcast --------------------------------------------------------------

local members = {}
app:get("/deliver/join", function(req)
    members[#members + 1] = { sender = req.sender, conn_id = req.conn_id }
    return "joined\n"
end)

app:post("/deliver/send", function(req)
    local ids, sender = {}, nil
    for i, m in ipairs(members) do ids[i] = m.conn_id; sender = m.sender end
    if not sender then return 409, { err = "nobody joined" } end
    -- ids of connections that do not exist: Mongrel2 skips them (and says so
    -- with disconnect notices); they push the list past 128 ids a frame
    for i = 1, tonumber(req:arg("dead", "0")) do ids[#ids + 1] = 4000000000 + i end
    local frames = app:deliver(sender, ids, req.body)
    members = {}
    return { frames = frames, targets = #ids }
end)

return app
