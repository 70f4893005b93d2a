-- The host's hot accessors through LuaJIT's FFI (host/lua/lua_fast.c): compiled
-- code calls them directly, where a lua_CFunction would end the trace around
-- the call. Each copies what C found before anything else can run.
local ffi = require "ffi"
local core = require "lubeck.core"

-- The declarations are the host's own (host/lua/lua_fast.h), handed over as text:
-- there is no second copy here to keep in step.
ffi.cdef(core.fast.cdef)

local C = ffi.C
local api = ffi.cast("const lubeck_fast_api *", core.fast.api)
local c_query_arg, c_cookie, c_respond = api.query_arg, api.cookie, api.respond
local gen = ffi.cast("struct lbk_fast *", core.fast.gen)   -- (a light userdata argument is not compiled)
local value, value_len = ffi.new("const char *[1]"), ffi.new("size_t[1]")
local ffi_string, error, type, tostring = ffi.string, error, type, tostring

local FOUND, ENDED, NO_MEMORY = C.LUBECK_FAST_FOUND, C.LUBECK_FAST_ENDED, C.LUBECK_FAST_NO_MEMORY

local _M = {}

-- Calls a finder (query_arg or cookie) and copies the value it found.
local function find(c_find, handle, name)
    if type(name) ~= "string" then name = tostring(name) end
    local rc = c_find(gen, handle, name, #name, value, value_len)
    if rc == FOUND then return ffi_string(value[0], value_len[0]) end
    if rc == ENDED then error("this request has ended", 3) end
    if rc == NO_MEMORY then error("out of memory", 3) end
    return nil
end

-- The last value of name in the query string, or nil.
function _M.query_arg(handle, name)
    return find(c_query_arg, handle, name)
end

-- The first cookie of that name, or nil.
function _M.cookie(handle, name)
    return find(c_cookie, handle, name)
end

-- Sends a whole response whose only header is its Content-Type.
_M.NO_TYPE, _M.HTML, _M.JSON = C.LUBECK_FAST_NO_TYPE, C.LUBECK_FAST_HTML, C.LUBECK_FAST_JSON

-- true when sent, false when the request had ended or was already answered.
function _M.respond(handle, status, body, content_type)
    return c_respond(gen, handle, status, body, #body, content_type) == 1
end

return _M
