-- The end-to-end test app for the complete cosocket (docs/ecosystem.md), driven by
-- tests/e2e/test_cosocket.py. ?port= is the test's echo server on loopback;
-- ?path= its unix-socket twin. Every route answers JSON of what it saw.
local lubeck = require "lubeck"
local cjson = require "cjson"

local app = lubeck.app{ name = "cosocket" }

local function echo(req)
    local sock = lubeck.tcp()
    local ok, err
    if req:arg("path") then ok, err = sock:connect("unix:" .. req:arg("path"))
    else ok, err = sock:connect("127.0.0.1", tonumber(req:arg("port"))) end
    assert(ok, err)
    return sock
end

local function pack(...) return { n = select("#", ...), ... } end
local function json(t)   -- nil-safe: holes become JSON null
    local out = {}
    for i = 1, t.n or #t do out[i] = t[i] == nil and cjson.null or t[i] end
    return out
end

app:get("/send_table", function(req)
    local sock = echo(req)
    local sent = sock:send({ "a", { "b", 1, { "c", 2.5 } }, "", { { "d" } } })
    local back = sock:receive(sent)
    local _, err = pcall(sock.send, sock, { "x", true })
    sock:close()
    return { sent = sent, back = back, bad = err }
end)

app:get("/until", function(req)
    local sock = echo(req)
    sock:send("first--END--second--END--tail")
    local reader = sock:receiveuntil("--END--")
    local a = reader()
    local b = reader()
    local inclusive = sock:receiveuntil("l", { inclusive = true })
    local c = inclusive()
    sock:send("--END--")
    local rest = reader()
    sock:close()
    return { a = a, b = b, c = c, rest = rest }
end)

-- Sized reads: chunks of at most 4 bytes, then nil at the pattern.
app:get("/until_sized", function(req)
    local sock = echo(req)
    sock:send("0123456789\r\n--b\r\nafter")
    local reader = sock:receiveuntil("\r\n--b\r\n")
    local chunks = {}
    for _ = 1, 10 do
        local data, err = reader(4)
        if not data then chunks[#chunks + 1] = err or "END"; break end
        chunks[#chunks + 1] = data
    end
    local after = sock:receive(5)
    sock:close()
    return { chunks = chunks, after = after }
end)

-- The pattern split across two writes, a byte at a time near the boundary.
app:get("/until_split", function(req)
    local sock = echo(req)
    local reader = sock:receiveuntil("ABAB")
    local got
    local t = lubeck.spawn(function() got = pack(reader()) end)
    for _, piece in ipairs{ "xxAB", "A", "BA", "BAB!" } do
        sock:send(piece)
        lubeck.sleep(0.02)
    end
    t:wait(2)
    local tail = sock:receive(2)
    sock:close()
    return { got = json(got), tail = tail }
end)

app:get("/until_closed", function(req)
    local sock = echo(req)
    sock:send("no pattern here")
    sock:send("QUIT-AFTER-ECHO")    -- the echo server closes after this
    local reader = sock:receiveuntil("--never--")
    return json(pack(reader()))
end)

app:get("/receiveany", function(req)
    local sock = echo(req)
    sock:send("hello world")
    lubeck.sleep(0.05)
    local a = sock:receiveany(5)
    local b = sock:receiveany(100)
    local _, err = pcall(sock.receiveany, sock, 0)
    sock:close()
    return { a = a, b = b, bad = err }
end)

app:get("/unix", function(req)
    local sock = echo(req)
    sock:send("over unix\n")
    local line = sock:receive()
    local kept = sock:setkeepalive()
    local again = lubeck.tcp()
    again:connect("unix:" .. req:arg("path"))
    local reused = again:getreusedtimes()
    again:close()
    return { line = line, kept = kept, reused = reused }
end)

app:get("/missing_unix", function(req)
    local sock = lubeck.tcp()
    return json(pack(sock:connect("unix:" .. req:arg("path"))))
end)

-- settimeouts: the read timeout alone is short.
app:get("/timeouts", function(req)
    local sock = lubeck.tcp()
    sock:settimeouts(1000, 1000, 100)
    assert(sock:connect("127.0.0.1", tonumber(req:arg("port"))))
    local started = lubeck.now()
    local data, err = sock:receive()
    local waited = lubeck.now() - started
    local still = sock:send("alive\n")               -- a read timeout leaves it open
    local line = sock:receive()
    local bad = select(2, pcall(sock.settimeout, sock, -1))
    sock:close()
    return { data = data or cjson.null, err = err, waited = waited, still = still, line = line,
             bad = bad }
end)

-- settimeout(0) is the default timeout, as in OpenResty: not "expire at once".
app:get("/timeout_zero", function(req)
    local sock = lubeck.tcp()
    sock:settimeout(0)
    assert(sock:connect("127.0.0.1", tonumber(req:arg("port"))))
    sock:send("DELAY-ECHO late\n")                  -- echoed after 100 ms
    local line, err = sock:receive()
    sock:close()
    return { line = line or cjson.null, err = err }
end)

-- One coroutine reads while another writes on the same socket; then a close
-- from one wakes the other's read with "closed".
app:get("/duplex", function(req)
    local sock = echo(req)
    local lines = {}
    local reader = lubeck.spawn(function()
        for _ = 1, 3 do lines[#lines + 1] = sock:receive() end
        return sock:receive()
    end)
    for i = 1, 3 do
        assert(sock:send("line " .. i .. "\n"))
        lubeck.sleep(0.01)
    end
    local busy = pack(sock:receive())           -- the reader is in receive
    sock:close()
    local ok, last, err = reader:wait(2)
    return { lines = lines, busy = json(busy), ok = ok, last = last or cjson.null, err = err }
end)

app:get("/options", function(req)
    local sock = lubeck.tcp()
    local before = pack(sock:setoption("keepalive", true))
    sock:connect("127.0.0.1", tonumber(req:arg("port")))
    local after = sock:setoption("keepalive", true)
    local nodelay = sock:setoption("tcp-nodelay", true)
    local unknown = select(2, pcall(sock.setoption, sock, "nosuch", 1))
    sock:close()
    return { before = json(before), after = after, nodelay = nodelay, unknown = unknown }
end)

-- Misuse raises, naming the method.
app:get("/arg_errors", function(req)
    local sock = lubeck.tcp()
    local out = {}
    out.connect = select(2, pcall(sock.connect, sock, "127.0.0.1"))
    out.port = select(2, pcall(sock.connect, sock, "127.0.0.1", 70000))
    out.pool = select(2, pcall(sock.connect, sock, "127.0.0.1", 1, { pool = 5 }))
    out.receive = select(2, pcall(sock.receive, sock, "*x"))
    out.send = select(2, pcall(sock.send, sock, nil))
    out.until_empty = select(2, pcall(sock.receiveuntil, sock, ""))
    out.self = select(2, pcall(sock.receive, {}, "*l"))
    return out
end)

-- The pool_size option of connect caps how many connections the pool keeps.
app:get("/pool_size", function(req)
    local port = tonumber(req:arg("port"))
    local socks = {}
    for i = 1, 3 do
        socks[i] = lubeck.tcp()
        assert(socks[i]:connect("127.0.0.1", port, { pool = "sized", pool_size = 2 }))
    end
    for i = 1, 3 do socks[i]:setkeepalive() end
    local reused = {}
    for i = 1, 3 do
        local s = lubeck.tcp()
        assert(s:connect("127.0.0.1", port, { pool = "sized" }))
        reused[i] = s:getreusedtimes()
        s:close()
    end
    return { reused = reused }
end)

-- Socket calls inside the handler's own coroutines: a generator that yields
-- the lines it reads (as lua-resty-http's body reader does), nested two deep,
-- with lubeck.sleep inside a coroutine.wrap.
app:get("/coroutines", function(req)
    local sock = echo(req)
    sock:send("one\ntwo\nthree\n")
    local lines = coroutine.wrap(function()
        for _ = 1, 3 do coroutine.yield(sock:receive()) end
    end)
    local got = { lines(), lines(), lines() }
    local outer = coroutine.create(function()
        local inner = coroutine.create(function(x)
            lubeck.sleep(0.01)
            sock:send("deep\n")
            local line = sock:receive()
            local y = coroutine.yield(x .. ":" .. line)
            return y * 2
        end)
        local _, a = coroutine.resume(inner, "in")
        local _, b = coroutine.resume(inner, 21)
        coroutine.yield(a)
        return b, coroutine.status(inner)
    end)
    local r1 = { coroutine.resume(outer) }
    local r2 = { coroutine.resume(outer) }
    local slept = coroutine.wrap(function() return lubeck.sleep(0.01) end)()
    sock:send("x\n")
    local failed, err = pcall(coroutine.wrap(function() sock:receive(); error("boom", 0) end))
    sock:close()
    return { got = got, r1 = r1, r2 = r2, slept = slept, failed = failed, err = err,
             status = coroutine.status(outer) }
end)

-- backlog: one connection of the pool in use at a time; one connect may wait
-- for it, a third is refused; the waiter gets the connection the first pooled.
app:get("/backlog", function(req)
    local port = tonumber(req:arg("port"))
    local opts = { pool = "bl" .. req:arg("round"), pool_size = 1, backlog = 1 }
    local events = {}
    local function user(name, hold)
        local sock = lubeck.tcp()
        sock:settimeout(tonumber(req:arg("timeout") or 1000))
        local ok, err = sock:connect("127.0.0.1", port, opts)
        events[#events + 1] = name .. ":" .. (ok and ("connected/" .. sock:getreusedtimes()) or err)
        if not ok then return end
        lubeck.sleep(hold)
        events[#events + 1] = name .. ":done"
        sock:setkeepalive()
    end
    local a = lubeck.spawn(user, "a", 0.1)
    lubeck.sleep(0.01)
    local b = lubeck.spawn(user, "b", 0)
    lubeck.sleep(0.01)
    local c = lubeck.spawn(user, "c", 0)
    a:wait(3); b:wait(3); c:wait(3)
    return events
end)

-- The peer resets while a receive waits: nil, err, partial; then the socket is closed.
app:get("/reset", function(req)
    local sock = echo(req)
    local reading = lubeck.spawn(function() return pack(sock:receive()) end)
    lubeck.sleep(0.02)
    sock:send("RESET")
    local _, read = reading:wait(2)
    return { read = json(read), after = json(pack(sock:send("more"))) }
end)

return app
