-- The host's hot accessors through LuaJIT's FFI (host/lua_fast.c): compiled
-- code calls them directly, where a lua_CFunction would end the trace around
-- the call. Each copies what C found before anything else can run.
local ffi = require "ffi"
local core = require "lubeck.core"

ffi.cdef [[
typedef struct lubeck_fast_api {
    int (*query_arg)(void *, double, const char *, size_t, const char **, size_t *);
    int (*cookie)(void *, double, const char *, size_t, const char **, size_t *);
    int (*respond)(void *, double, int, const char *, size_t, int);
} lubeck_fast_api;
]]

local api = ffi.cast("const lubeck_fast_api *", core.fast_api)
local c_query_arg, c_cookie, c_respond = api.query_arg, api.cookie, api.respond
local gen = ffi.cast("void *", core.fast_gen)   -- (a light userdata argument is not compiled)
local value, value_len = ffi.new("const char *[1]"), ffi.new("size_t[1]")
local ffi_string, error, type, tostring = ffi.string, error, type, tostring

local FOUND, ENDED, NO_MEMORY = 1, -1, -2

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
_M.NO_TYPE, _M.HTML, _M.JSON = 0, 1, 2

-- true when sent, false when the request had ended or was already answered.
function _M.respond(handle, status, body, content_type)
    return c_respond(gen, handle, status, body, #body, content_type) == 1
end

return _M
