-- Coroutines a handler makes itself can wait on the host, as in ngx_lua: a
-- socket call, lubeck.sleep or a channel wait inside coroutine.create/wrap
-- suspends the whole request and comes back to that coroutine when its
-- result arrives. A host call inside such a coroutine yields a private
-- marker; resume (installed over the global coroutine.resume and .wrap when
-- lubeck loads) sees it, yields it on up to the request's own coroutine,
-- whose wait the host completes, and hands the results back down.
-- A library's own yields go through untouched.
local core = require "lubeck.core"

local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume,
    coroutine.yield, coroutine.status
local select, error, type = select, error, type

local WAIT = core.wait_marker

local _M = { _VERSION = "0.1" }

local function pass(co, ok, first, ...)
    if ok and first == WAIT and select("#", ...) == 0 and co_status(co) == "suspended" then
        return pass(co, co_resume(co, co_yield(WAIT)))
    end
    return ok, first, ...
end

function _M.resume(co, ...)
    return pass(co, co_resume(co, ...))
end

local function unwrap(ok, ...)
    if not ok then error((...), 0) end
    return ...
end

function _M.wrap(f)
    if type(f) ~= "function" then error("bad argument #1 to 'wrap' (function expected)", 2) end
    local co = co_create(f)
    return function(...) return unwrap(_M.resume(co, ...)) end
end

-- Installs resume and wrap over the global coroutine table (once).
function _M.install()
    coroutine.resume = _M.resume   -- luacheck: ignore 122
    coroutine.wrap = _M.wrap       -- luacheck: ignore 122
end

_M.install()

return _M
