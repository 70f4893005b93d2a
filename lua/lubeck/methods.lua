-- The HTTP methods lubeck knows by name, in the order an Allow header lists
-- them. The C router has a bit for each (router.h); any other method still
-- reaches a route that allows every method. Routes, class dispatch, the Allow
-- header and the test client all read this one list.
local ipairs, lower = ipairs, string.lower

local _M = { _VERSION = "0.1" }

_M.list = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }

-- Methods a class handler serves with a method of the same name in lower case
-- (HEAD is served by get, with the body dropped).
_M.class_methods = {}
for _, m in ipairs(_M.list) do
    if m ~= "HEAD" then _M.class_methods[#_M.class_methods + 1] = lower(m) end
end

return _M
