-- The response half of a handler: status, headers, cookies, a body buffer, and
-- the calls that send it (finish in one frame, or flush to stream it chunked).
-- Class handlers inherit these methods; function routes get a bare Response.
local core = require "lubeck.core"
local json = require "lubeck.json"
local errors = require "lubeck.errors"
local session = require "lubeck.session"

local type, tostring, error, setmetatable, pairs, concat = type, tostring, error, setmetatable, pairs, table.concat
local lower, format, date, find, gsub, byte = string.lower, string.format, os.date, string.find, string.gsub, string.byte
local respond, stream_start, stream_write, stream_finish = core.respond, core.stream.start, core.stream.write, core.stream.finish
local req_active = core.req.active
local fast = require "lubeck.fast"
local fast_respond = fast.respond


local Response = {}
Response.__index = Response

local HTML = "text/html; charset=utf-8"
local JSON = "application/json"

-- Headers and body chunks start as this one shared empty list; the first write
-- gives the response a list of its own (most responses never need one).
local NONE = setmetatable({}, { __newindex = function()
    error("lubeck internal error: write to the shared empty list", 2)
end })

local function own_headers(self)
    local headers = self._headers
    if headers == NONE then
        headers = {}
        self._headers = headers
    end
    return headers
end

-- The fields every response reads are set here (false when unset): a read of a
-- missing key would walk the class chain of a handler instance. Seven keys
-- keep the table at its smallest hash size.
function Response.new(req, app, mt)
    return setmetatable({
        req = req, app = app, _status = 200, _headers = NONE, _buffer = NONE,
        _finished = false, _streaming = false,
    }, mt or Response)
end

-- Headers live in one flat list { name, value, ... }: the form core.respond takes.
local function find_header(headers, name)
    local lname = lower(name)
    for i = 1, #headers, 2 do
        if lower(headers[i]) == lname then return i end
    end
end

-- A name fit for a log line: control and non-ASCII bytes as \ddd.
local function printable(s)
    return (gsub(s, "[%c\128-\255]", function(c) return format("\\%03d", byte(c)) end))
end

-- Refuses what would split the response (CR, LF) at the call that set it, so the
-- traceback points at the app's line; the host checks again before sending.
local function check_header(name, value, level)
    if type(name) ~= "string" or name == "" then
        error("header name must be a non-empty string", level + 1)
    end
    if find(name, "[^%w!#$%%&'*+%-.^_`|~]") then
        error(format("header '%s': the name is not an HTTP token (it holds CR, LF, a space or a separator)",
            printable(name)), level + 1)
    end
    if type(value) ~= "string" and type(value) ~= "number" then
        error(format("header '%s': value must be a string or number, got %s", name, type(value)), level + 1)
    end
    value = tostring(value)
    if find(value, "[\r\n%z]") then
        error(format("header '%s': the value holds CR, LF or NUL", name), level + 1)
    end
    return value
end

function Response:set_status(code)
    if type(code) ~= "number" or code < 100 or code > 999 then
        error("set_status: not an HTTP status code: " .. tostring(code), 2)
    end
    self._status = code
end

function Response:get_status()
    return self._status
end

function Response:set_header(name, value)
    value = check_header(name, value, 2)
    local headers = own_headers(self)
    local i = find_header(headers, name)
    if i then
        headers[i + 1] = value
        self:clear_header(name, i + 2)   -- drop copies add_header made after it
    else
        headers[#headers + 1] = name
        headers[#headers + 1] = value
    end
end

function Response:add_header(name, value)
    value = check_header(name, value, 2)
    local headers = own_headers(self)
    headers[#headers + 1] = name
    headers[#headers + 1] = value
end

function Response:get_header(name)
    local i = find_header(self._headers, name)
    return i and self._headers[i + 1]
end

-- Removes every header of that name (from position `from` of the flat list on).
function Response:clear_header(name, from)
    local headers, lname = self._headers, lower(name)
    local j = from or 1
    while j <= #headers do
        if lower(headers[j]) == lname then
            table.remove(headers, j); table.remove(headers, j)
        else
            j = j + 2
        end
    end
end

-- Cookies ------------------------------------------------------------------

local function cookie_date(t)
    return date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

local function check_cookie_part(what, s)
    if s:find("[%c;,]") then error(format("cookie %s holds a control character, ';' or ','", what), 3) end
end

function Response:set_cookie(name, value, opts)
    name, value = tostring(name), tostring(value)
    check_cookie_part("name", name)
    if name:find("[%s=]") or name == "" then error("cookie name must be a token", 2) end
    check_cookie_part("value", value)
    opts = opts or {}
    local parts = { name .. "=" .. value }
    parts[#parts + 1] = "Path=" .. (opts.path or "/")
    if opts.domain then check_cookie_part("domain", opts.domain); parts[#parts + 1] = "Domain=" .. opts.domain end
    if opts.max_age then parts[#parts + 1] = format("Max-Age=%d", opts.max_age) end
    if opts.expires then
        parts[#parts + 1] = "Expires=" .. (type(opts.expires) == "number" and cookie_date(opts.expires) or opts.expires)
    end
    if opts.secure then parts[#parts + 1] = "Secure" end
    if opts.http_only ~= false then parts[#parts + 1] = "HttpOnly" end
    if opts.same_site then parts[#parts + 1] = "SameSite=" .. opts.same_site end
    self:add_header("Set-Cookie", concat(parts, "; "))
end

-- Signed with the app's cookie_secret (see lubeck.session); a tampered or
-- expired one reads as nil.
function Response:set_secure_cookie(name, value, opts)
    return session.set_secure_cookie(self, name, value, opts, 2)
end

function Response:get_secure_cookie(name, max_age_days)
    return session.get_secure_cookie(self, name, max_age_days, 2)
end

function Response:clear_cookie(name, opts)
    local o = { path = opts and opts.path, domain = opts and opts.domain, max_age = 0, expires = 0 }
    self:set_cookie(name, "", o)
end

-- Bodies -------------------------------------------------------------------

function Response:write(chunk)
    if self._finished then error("write() after finish()", 2) end
    if type(chunk) == "table" then
        if not self:get_header("Content-Type") then self:set_header("Content-Type", JSON) end
        chunk = json.encode(chunk)
    elseif type(chunk) ~= "string" then
        chunk = tostring(chunk)
    end
    local buffer = self._buffer
    if buffer == NONE then
        buffer = {}
        self._buffer = buffer
    end
    buffer[#buffer + 1] = chunk
end

-- (runs for nearly every response: a plain scan, no validation of our constant)
local function default_content_type(self)
    local headers = self._headers
    for i = 1, #headers, 2 do
        local name = headers[i]
        if name == "Content-Type" or lower(name) == "content-type" then return end
    end
    headers = own_headers(self)
    headers[#headers + 1] = "Content-Type"
    headers[#headers + 1] = HTML
end

local function joined(buffer)
    local n = #buffer
    if n == 1 then return buffer[1] end
    if n == 0 then return "" end
    return concat(buffer)
end

-- Raises when a header cannot be sent; the pipeline turns that into a 500.
local function checked(ok, err)
    if ok == nil then error(err, 0) end
    return ok
end

-- Runs the class's _before_head hook (saving the session) just before the head
-- leaves. It may run twice, when an error page replaces a refused response;
-- saving the session again is a no-op.
local function before_head(self)
    local hook = self._before_head
    if hook then hook(self) end
end

-- Sends the head and what is written so far; the response streams from now on.
function Response:flush()
    if self._finished then return false end
    local handle = self.req._handle
    if not self._streaming then
        before_head(self)
        default_content_type(self)
        -- Streaming only once the head is out: a refused header still leaves
        -- room for a clean error page.
        checked(stream_start(handle, self._status, self._headers))
        self._streaming = true
    end
    local body = concat(self._buffer)
    self._buffer = NONE
    if body ~= "" then return stream_write(handle, body) end
    return req_active(handle)
end

function Response:finish(chunk)
    if self._finished then return end
    local body
    if type(chunk) == "string" and self._buffer == NONE and not self._streaming then
        body = chunk      -- the common case: one string, nothing written before
    elseif chunk ~= nil then
        self:write(chunk)
    end
    local handle = self.req._handle
    if self._streaming then
        self._finished = true
        local rest = concat(self._buffer)
        if rest ~= "" then stream_write(handle, rest) end
        stream_finish(handle)
        return
    end
    before_head(self)
    body = body or joined(self._buffer)
    -- Finished only once sent: when a header is refused, the error page that
    -- follows must still be able to go out.
    local headers = self._headers
    if body ~= "" and headers ~= NONE then
        default_content_type(self)
        headers = self._headers
    end
    if headers == NONE then
        -- No header of the handler's own: nothing for C to read and check.
        fast_respond(handle, self._status, body, body ~= "" and fast.HTML or fast.NO_TYPE)
    elseif #headers == 2 and headers[2] == HTML and headers[1] == "Content-Type" then
        fast_respond(handle, self._status, body, fast.HTML)
    else
        checked(respond(handle, self._status, body, headers))
    end
    self._finished = true
end

function Response:json(value, status)
    if status then self:set_status(status) end
    self:set_header("Content-Type", JSON)
    self._buffer = { json.encode(value) }
    self:finish()
end

function Response:redirect(url, status)
    url = tostring(url)
    self:set_status(status or 302)
    self:set_header("Location", url)
    self._buffer = NONE
    self:finish()
end

function Response:is_finished()
    return self._finished == true
end

-- Errors ----------------------------------------------------------------------

-- The error page for status; override in a class to customise. err is the
-- traceback (only passed when the app runs with debug = true).
function Response:write_error(status, err)
    if self._json_errors then
        self:set_header("Content-Type", JSON)
        self:finish(json.encode(errors.json_body(status, err)))
    else
        self:set_header("Content-Type", HTML)
        self:finish(errors.html_page(status, err))
    end
end

-- Resets what was prepared and answers with write_error; headers (a flat
-- { name, value, ... } list) start the new set, e.g. Allow for a 405.
function Response:send_error(status, err, headers)
    if self._finished or self._streaming then return end
    self._status = status
    self._headers = headers or NONE
    self._buffer = NONE
    self:write_error(status, err)
    if not self._finished then self:finish() end
end

-- The answer to lubeck.abort(status, body).
function Response:send_abort(abort)
    if self._finished or self._streaming then return end
    local body = abort.body
    if body == nil then return self:send_error(abort.status) end
    self._status = abort.status
    self._buffer = NONE
    if type(body) == "table" then
        self:json(body)
    else
        self:finish(tostring(body))
    end
end

-- What a handler returned becomes the response (docs/reference.md, Handlers).
function Response:apply_result(a, b, c)
    if self._finished then return end
    local ta = type(a)
    if ta == "number" then
        self:set_status(a)
        if type(c) == "table" then
            for name, value in pairs(c) do self:set_header(name, value) end
        end
        a, ta = b, type(b)
        if a == nil then return self:finish() end
    end
    if ta == "string" then
        return self:finish(a)
    elseif ta == "table" then
        -- JSON, unless the handler chose its own type (application/problem+json, ...)
        if not self:get_header("Content-Type") then self:set_header("Content-Type", JSON) end
        self._buffer = { json.encode(a) }
    elseif a == nil then
        if not self._streaming and #self._buffer == 0 and self._status == 200 then
            self._status = 204
        end
    else
        self:write(tostring(a))
    end
    self:finish()
end

Response.JSON_TYPE = JSON
Response.HTML_TYPE = HTML

return Response
