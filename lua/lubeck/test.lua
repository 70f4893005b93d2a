-- Testing an app without Mongrel2 (docs/testing.md):
--   local client = require("lubeck.test").client("apps/hello")
--   local res = client:get("/users/1", { headers = { cookie = "a=b" } })
--   -- res.status, res.headers, res.body; client:post(path, { body=, form=, json= })
-- Requests go through the real host pipeline (frame parser, C router,
-- coroutines, reply framing) in this process, with no sockets: the client
-- writes the frame Mongrel2 would send and reads the frames the host answers.
-- Cookies the app sets are kept and sent back, as a browser would.
-- The test host is built against LuaJIT: under another Lua it cannot even load
-- (testhost.so: undefined symbol ...), so say what to run instead.
if not rawget(_G, "jit") then
    error("lubeck.test needs LuaJIT: run busted --lua=luajit (or put lua = \"luajit\" in .busted)", 0)
end
local testhost = require "lubeck.testhost"
local json = require "lubeck.json"   -- numbers keep every digit (see json.lua)

local setmetatable, type, pairs, ipairs, tostring, tonumber, error = setmetatable, type, pairs, ipairs, tostring, tonumber, error
local format, lower, find, sub, gsub, match, gmatch, byte = string.format, string.lower, string.find, string.sub,
    string.gsub, string.match, string.gmatch, string.byte
local concat = table.concat

local _M = {}

local SENDER = "0f0f0f0f-test-4000-8000-000000000000"

local Client = {}
Client.__index = Client

local function urlencode(s)
    return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

function _M.urlencode_form(form)
    local parts = {}
    for name, value in pairs(form) do
        if type(value) == "table" then
            for _, v in ipairs(value) do parts[#parts + 1] = urlencode(name) .. "=" .. urlencode(v) end
        else
            parts[#parts + 1] = urlencode(name) .. "=" .. urlencode(value)
        end
    end
    table.sort(parts)
    return concat(parts, "&")
end

-- client(app_dir [, { debug = true }])
function _M.client(app_dir, opts)
    opts = opts or {}
    local host, err = testhost.new(app_dir, opts.debug)
    if not host then error(err, 2) end
    return setmetatable({ host = host, cookies = {}, next_conn = 1, inbox = {}, methods = {},
        remote_addr = opts.remote_addr or "127.0.0.1" }, Client)
end

local function cookie_header(jar)
    local parts = {}
    for name, value in pairs(jar) do parts[#parts + 1] = name .. "=" .. value end
    table.sort(parts)
    return #parts > 0 and concat(parts, "; ") or nil
end

-- The frame Mongrel2 1.12 would send for this request (JSON headers).
function Client:frame(method, path, opts)
    opts = opts or {}
    local body = opts.body or ""
    local headers = {}
    for name, value in pairs(opts.headers or {}) do headers[lower(name)] = value end
    if opts.form then
        body = _M.urlencode_form(opts.form)
        headers["content-type"] = headers["content-type"] or "application/x-www-form-urlencoded"
    elseif opts.json ~= nil then
        body = json.encode(opts.json)
        headers["content-type"] = headers["content-type"] or "application/json"
    end
    if #body > 0 then headers["content-length"] = tostring(#body) end
    headers.host = headers.host or "localhost"
    if not headers.cookie then headers.cookie = cookie_header(self.cookies) end
    headers["x-forwarded-for"] = self.remote_addr
    local bare, query = match(path, "^([^?#]*)%??([^#]*)")
    headers.PATH = bare
    headers.METHOD = method
    headers.VERSION = opts.version or "HTTP/1.1"
    headers.URI = path
    if query ~= "" then headers.QUERY = query end
    headers.PATTERN = "/"
    headers.URL_SCHEME = "http"
    headers.REMOTE_ADDR = self.remote_addr
    local conn = opts.conn_id or self.next_conn
    self.next_conn = self.next_conn + 1
    local hjson = json.encode(headers)
    return format("%s %d %s %d:%s,%d:%s,", SENDER, conn, bare, #hjson, hjson, #body, body), conn
end

-- A reply frame → the conn ids it targets ("12 13") and the bytes it carries
-- ("" is Mongrel2's close).
local function split_frame(f)
    local idlen_at = find(f, " ", 1, true)
    local len, rest = match(f, "^(%d+):()", idlen_at + 1)
    len = tonumber(len)
    return sub(f, rest, rest + len - 1), sub(f, rest + len + 2)   -- past "IDS, "
end

-- Reply frames → the HTTP bytes they carry, and whether the connection closed.
local function payloads(frames)
    local out, closed = {}, false
    for _, f in ipairs(frames) do
        local _, payload = split_frame(f)
        if payload == "" then closed = true else out[#out + 1] = payload end
    end
    return concat(out), closed
end

local function dechunk(body)
    local out, pos = {}, 1
    while true do
        local size_hex, after = match(body, "^(%x+)[^\r\n]*\r\n()", pos)
        if not size_hex then return nil end
        local size = tonumber(size_hex, 16)
        if size == 0 then return concat(out) end
        out[#out + 1] = sub(body, after, after + size - 1)
        pos = after + size + 2
    end
end

local headers_mt = {
    __index = function(t, k) if type(k) == "string" then return rawget(t, lower(k)) end end,
}

local function parse_response(raw, closed, method)
    local head_end = find(raw, "\r\n\r\n", 1, true)
    if not head_end then return { status = nil, raw = raw, closed = closed } end
    local head, body = sub(raw, 1, head_end - 1), sub(raw, head_end + 4)
    local version, status, reason = match(head, "^(HTTP/%d%.%d) (%d%d%d) ([^\r\n]*)")
    local headers, list = setmetatable({}, headers_mt), {}
    for line in gmatch(sub(head, find(head, "\r\n", 1, true) or #head + 1), "\r\n([^\r\n]+)") do
        local name, value = match(line, "^([^:]+):%s*(.*)$")
        if name then
            list[#list + 1] = { name, value }
            local lname = lower(name)
            headers[lname] = headers[lname] and (headers[lname] .. ", " .. value) or value
        end
    end
    if headers["transfer-encoding"] == "chunked" then body = dechunk(body) or body end
    return {
        status = tonumber(status), reason = reason, version = version, headers = headers,
        header_list = list, body = body, closed = closed, raw = raw,
    }
end

function Client:update_cookies(res)
    for _, h in ipairs(res.header_list or {}) do
        if lower(h[1]) == "set-cookie" then
            local name, value = match(h[2], "^%s*([^=;]+)=([^;]*)")
            if name then
                local attrs = lower(h[2])
                if find(attrs, "max%-age=0") or find(attrs, "max%-age=%-") then
                    self.cookies[name] = nil
                else
                    self.cookies[name] = value
                end
            end
        end
    end
end

-- Whether raw (and a close) holds a whole response to a method request.
local function complete(raw, closed, method)
    if closed then return true end
    local head_end = find(raw, "\r\n\r\n", 1, true)
    if not head_end then return false end
    local head = lower(sub(raw, 1, head_end + 1))
    local status = tonumber(match(head, "^http/%d%.%d (%d%d%d)"))
    if method == "HEAD" or not status or status < 200 or status == 204 or status == 304 then
        return true
    end
    local body = sub(raw, head_end + 4)
    if find(head, "\r\ntransfer%-encoding:%s*chunked") then return dechunk(body) ~= nil end
    local length = match(head, "\r\ncontent%-length:%s*(%d+)")
    if length then return #body >= tonumber(length) end
    return false   -- the end is the close
end

local POLL = 0.002   -- seconds of loop per look at what arrived

-- Files the frames the host sent under the connections they target.
function Client:collect(frames)
    local inbox = self.inbox
    for _, f in ipairs(frames) do
        local ids, payload = split_frame(f)
        for id in gmatch(ids, "%d+") do
            id = tonumber(id)
            local box = inbox[id]
            if not box then box = { frames = {}, parts = {}, closed = false }; inbox[id] = box end
            box.frames[#box.frames + 1] = f
            if payload == "" then box.closed = true else box.parts[#box.parts + 1] = payload end
        end
    end
end

-- Runs the host until conn's response is complete (or nothing is left running,
-- or timeout seconds pass) and returns it; other connections' frames stay filed.
function Client:response(conn, timeout, method)
    method = method or self.methods[conn]
    self:collect(self.host:run(0))   -- what a handler that never waited answered
    local box
    for _ = 1, (timeout or 30) / POLL do
        box = self.inbox[conn]
        if box and complete(concat(box.parts), box.closed, method) then break end
        if self.host:inflight() == 0 then break end
        self:collect(self.host:run(POLL))
    end
    box = self.inbox[conn] or { frames = {}, parts = {}, closed = false }
    self.inbox[conn] = nil
    self.methods[conn] = nil
    local res = parse_response(concat(box.parts), box.closed, method)
    res.frames = box.frames
    res.conn_id = conn
    self:update_cookies(res)
    return res
end

-- Hands a frame to the host. The host reads its clock when a request arrives
-- (deadlines, timers), so bring it up to date first: a test may have slept.
function Client:send_frame(frame)
    self:collect(self.host:run(0.0001))
    self.host:send(frame)
end

-- request(method, path [, { headers=, body=, form=, json=, timeout=, conn_id= }]) → res
-- Returns once this request's response is complete, while other requests (see
-- start) go on waiting.
function Client:request(method, path, opts)
    opts = opts or {}
    local frame, conn = self:frame(method, path, opts)
    self.inbox[conn] = nil
    self:send_frame(frame)
    return self:response(conn, opts.timeout, method)
end

-- client:get(path [, opts]), client:post, ... one per method lubeck knows.
for _, method in ipairs(require("lubeck.methods").list) do
    Client[lower(method)] = function(self, path, opts) return self:request(method, path, opts) end
end

-- Tells the host the client of conn_id went away (a Mongrel2 disconnect notice).
function Client:disconnect(conn_id)
    local body = '{"type":"disconnect"}'
    local hdrs = '{"METHOD":"JSON"}'
    self:send_frame(format("%s %d @* %d:%s,%d:%s,", SENDER, conn_id, #hdrs, hdrs, #body, body))
end

-- Tells the host that the Mongrel2 which sent every request so far restarted
-- (host_front_reset): what it still runs ends silently.
function Client:front_reset()
    self.host:front_reset(SENDER)
end

-- Sends a request and returns its conn id at once; client:run(seconds) lets it
-- go on, client:response(conn_id) waits for its answer.
function Client:start(method, path, opts)
    local frame, conn = self:frame(method, path, opts)
    self.inbox[conn] = nil
    self.methods[conn] = method
    self:send_frame(frame)
    return conn
end

-- Lets timers and waiting requests run for up to seconds (less once nothing is
-- left running); returns the bytes sent meanwhile to any connection, and
-- whether a connection was closed. They also stay filed for client:response.
function Client:run(seconds)
    local frames = self.host:run(seconds)
    self:collect(frames)
    return payloads(frames)
end

-- The number of requests still running in the host.
function Client:inflight()
    return self.host:inflight()
end

function Client:reload()
    return self.host:reload()
end

function Client:close()
    self.host:close()
end

return _M
