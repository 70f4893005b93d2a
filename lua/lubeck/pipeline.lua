-- What runs in each request's coroutine: build the request, run the route's
-- handler under a traceback handler, turn what it returned into the response,
-- and answer failures (500, abort, 404, 405) without ever leaving a request
-- unanswered.
local core = require "lubeck.core"
local Request = require "lubeck.request"
local Response = require "lubeck.response"
local handler = require "lubeck.handler"
local errors = require "lubeck.errors"
local websocket = require "lubeck.websocket"

local type, xpcall, ipairs, getmetatable, concat, unpack =
    type, xpcall, ipairs, getmetatable, table.concat, unpack
local bit = require "bit"
local band = bit.band

local _M = {}

-- Method bits as the C router numbers them, for the Allow header of a 405.
local METHOD_BITS = {}
for i, m in ipairs(require("lubeck.methods").list) do METHOD_BITS[i] = { m, core.route.method_bit(m) } end
local OPTIONS_BIT = core.route.method_bit("OPTIONS")

local function allow_list(mask)
    local names = {}
    for _, m in ipairs(METHOD_BITS) do
        if band(mask, m[2]) ~= 0 then names[#names + 1] = m[1] end
    end
    if band(mask, OPTIONS_BIT) == 0 then names[#names + 1] = "OPTIONS" end
    return concat(names, ", ")
end

local on_error = errors.traceback

local function log_failure(req, where, err)
    core.log("error", ("%s %s: %s%s"):format(req.method, req.path, where, err))
end

-- Answers a failure of the handler: abort → its status; anything else → 500.
local function answer_failure(resp, req, app, err)
    if errors.is_abort(err) then
        return resp:send_abort(err)
    end
    log_failure(req, "", err)
    if resp._streaming then
        -- The head is out: the only honest end is to drop the connection.
        core.close(req._handle)
        resp._finished = true
        return
    end
    local ok, err2 = xpcall(resp.send_error, on_error, resp, 500, app.debug and err or nil)
    if not ok then
        -- write_error itself failed: fall back to the plain page.
        log_failure(req, "while answering the error: ", err2)
        Response.send_error(Response.new(req, app), 500)
    end
end

-- The route's captures as the host hands them over: n of them in c1..c4, or
-- all in the list rest when there are more (host.c, dispatch). No `...` in the
-- request path: LuaJIT compiles only functions with fixed arguments.
local function captures(n, c1, c2, c3, c4, rest)
    if n == 0 then return end
    if n == 1 then return c1 end
    if n == 2 then return c1, c2 end
    if n == 3 then return c1, c2, c3 end
    if n == 4 then return c1, c2, c3, c4 end
    return unpack(rest, 1, n)
end

local function params_of(route, n, c1, c2, c3, c4, rest)
    local params, names = {}, route.names
    local values = rest or { c1, c2, c3, c4 }
    for i = 1, n do
        local name = names[i]
        if name then params[name] = values[i] end
    end
    return params
end

local fast = require "lubeck.fast"
local respond, HTML, JSON = fast.respond, fast.HTML, fast.JSON
local json_encode = require("lubeck.json").encode

-- A function handler that returns a string or a table (the common case) is
-- answered straight from its result, without building a response object.
local function run_function(route, req, app, n, c1, c2, c3, c4, rest)
    local ok, a, b, c = xpcall(route.handler, on_error, req, captures(n, c1, c2, c3, c4, rest))
    if ok and b == nil then
        local ta = type(a)
        if ta == "string" then
            respond(req._handle, 200, a, HTML)   -- (false: the client is gone)
            return
        elseif ta == "table" then
            local encoded, body = pcall(json_encode, a)
            if encoded then
                respond(req._handle, 200, body, JSON)
                return
            end
        end
    end
    local resp = Response.new(req, app)
    if ok then
        ok, a = xpcall(resp.apply_result, on_error, resp, a, b, c)
    end
    if not ok then answer_failure(resp, req, app, a) end
end

-- The class's method, then what it returned turned into the response: one
-- protected call for both, since a failure in either is answered the same way.
local function run_and_apply(inst, cls, req, n, c1, c2, c3, c4, rest)
    local method = handler.method_for(inst, cls, req)
    if method then return inst:apply_result(method(inst, captures(n, c1, c2, c3, c4, rest))) end
end

local function run_class(inst, route, req, app, n, c1, c2, c3, c4, rest)
    local cls = route.handler
    local ok, err = xpcall(run_and_apply, on_error, inst, cls, req, n, c1, c2, c3, c4, rest)
    if not ok then answer_failure(inst, req, app, err) end
    local on_finish = cls.on_finish
    if type(on_finish) == "function" then
        local fin_ok, fin_err = xpcall(on_finish, on_error, inst)
        if not fin_ok then log_failure(req, "in on_finish: ", fin_err) end
    end
end

-- The response object of each request still running, for on_timeout.
local running = {}

-- The function the host calls for each request (host.c, dispatch), with ten
-- arguments: the handle, the method's router bit, whether there is a body,
-- the route's index (0: none matched, -1: not for this method) and the
-- captures. docs/architecture.md ("The seam") says what each holds;
-- tests/spec/handler_spec.lua checks them through the host.
function _M.entry(app)
    local routes = app.routes
    return function(handle, method_bit, has_body, index, n, c1, c2, c3, c4, rest)
        local req = Request.new(handle, method_bit, has_body)
        local route = routes[index]
        if route then
            if route.named then req.params = params_of(route, n, c1, c2, c3, c4, rest) end
            if route.kind == "function" then
                return run_function(route, req, app, n, c1, c2, c3, c4, rest)
            end
            local inst = handler.new_instance(route.handler, req, app)
            if route.handler._websocket and req.method == "WEBSOCKET_HANDSHAKE" then
                -- lives as long as the connection
                return websocket.session(inst, req, captures(n, c1, c2, c3, c4, rest))
            end
            running[handle] = inst
            run_class(inst, route, req, app, n, c1, c2, c3, c4, rest)
            running[handle] = nil
            return
        end
        local resp = Response.new(req, app)
        if index == 0 then
            return resp:send_error(404)
        end
        local allow = allow_list(c1)   -- a 405: c1 is the mask of allowed methods
        if req.method == "OPTIONS" then
            resp:set_header("Allow", allow)
            resp:set_status(204)
            return resp:finish()
        end
        resp:send_error(405, nil, { "Allow", allow })
    end
end

-- Called by the host when a request outlives request_timeout: answer 504
-- (the host then wakes the handler with nil, "timeout").
function _M.on_timeout(app)
    return function(handle)
        -- A class handler's own write_error shapes the page; a function route
        -- gets the default one.
        -- The page goes out through a response object of its own, so the
        -- handler's stays unfinished: when it wakes with nil, "timeout", what it
        -- writes is dropped instead of raising "write() after finish()".
        local inst = running[handle]
        local page = inst and Response.new(inst.req, app, getmetatable(inst))
            or Response.new({ _handle = handle }, app)
        page:send_error(504)
    end
end

return _M
