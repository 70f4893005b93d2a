-- Testing an app without Mongrel2 (API.md §9):
--   local client = require("lubeck.test").client("apps/hello")
--   local res = client:get("/users/1", { headers = { cookie = "a=b" } })
--   -- res.status, res.headers, res.body; client:post(path, { body=, form=, json= })
-- Requests go through the real host pipeline (frame parser, C router,
-- coroutines, reply framing) in this process, with no sockets: the client
-- writes the frame Mongrel2 would send and reads the frames the host answers.
-- Cookies the app sets are kept and sent back, as a browser would.
local testhost = require "lubeck.testhost"
local cjson = require("cjson").new()

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
    return setmetatable({ host = host, cookies = {}, next_conn = 1, remote_addr = opts.remote_addr or "127.0.0.1" }, Client)
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
        body = cjson.encode(opts.json)
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
    local hjson = cjson.encode(headers)
    return format("%s %d %s %d:%s,%d:%s,", SENDER, conn, bare, #hjson, hjson, #body, body), conn
end

-- Reply frames → the HTTP bytes they carry, and whether the connection closed.
local function payloads(frames)
    local out, closed = {}, false
    for _, f in ipairs(frames) do
        local idlen_at = find(f, " ", 1, true)
        local len, rest = match(f, "^(%d+):()", idlen_at + 1)
        local payload = sub(f, rest + tonumber(len) + 2)   -- past "IDS, "
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

-- request(method, path [, { headers=, body=, form=, json=, timeout= }]) → res
function Client:request(method, path, opts)
    opts = opts or {}
    local frame = self:frame(method, path, opts)
    local frames = self.host:request(frame, opts.timeout)
    local raw, closed = payloads(frames)
    local res = parse_response(raw, closed, method)
    res.frames = frames
    self:update_cookies(res)
    return res
end

for _, m in ipairs({ "get", "post", "put", "patch", "delete", "head", "options" }) do
    local method = m:upper()
    Client[m] = function(self, path, opts) return self:request(method, path, opts) end
end

-- Tells the host the client of conn_id went away (a Mongrel2 disconnect notice).
function Client:disconnect(conn_id)
    local body = '{"type":"disconnect"}'
    local hdrs = '{"METHOD":"JSON"}'
    self.host:send(format("%s %d @* %d:%s,%d:%s,", SENDER, conn_id, #hdrs, hdrs, #body, body))
end

-- Sends a request and returns at once; client:run(seconds) then lets it go on.
function Client:start(method, path, opts)
    local frame, conn = self:frame(method, path, opts)
    self.host:send(frame)
    return conn
end

function Client:run(seconds)
    local raw, closed = payloads(self.host:run(seconds))
    return raw, closed
end

function Client:reload()
    return self.host:reload()
end

function Client:close()
    self.host:close()
end

return _M
