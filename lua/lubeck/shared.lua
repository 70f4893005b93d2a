-- lubeck.shared(name): a small key/value dict shared by every worker of the
-- host (counters, caches, rate limits).
--   local hits = lubeck.shared("hits")
--   hits:incr("/", 1, 0)        hits:set("k", "v", 60)        hits:get("k")
-- Each call is atomic and at once visible to all workers of this host (one
-- lock over one shared-memory table; no call waits on I/O). Nothing is shared
-- between hosts, and everything is lost when the host stops. Values are
-- strings, numbers or booleans; keys and values fit in ~470 bytes together;
-- the whole table holds ~6,000 entries.
local core = require "lubeck.core"

local setmetatable, type, error = setmetatable, type, error
local get, set, incr = core.shared.get, core.shared.set, core.shared.incr

local _M = {}
local Dict = {}
Dict.__index = Dict

function _M.new(name)
    if type(name) ~= "string" or name == "" then
        error("lubeck.shared: name must be a non-empty string", 2)
    end
    return setmetatable({ name = name }, Dict)
end

function Dict:get(key)
    return get(self.name, key)
end

-- set(key, value [, ttl_seconds]) → true | nil, "no memory" | nil, "too large"
function Dict:set(key, value, ttl)
    return set(self.name, key, value, ttl)
end

function Dict:delete(key)
    return set(self.name, key, nil)
end

-- incr(key [, by=1 [, init [, ttl]]]) → the new number | nil, "not found" (no init)
function Dict:incr(key, by, init, ttl)
    return incr(self.name, key, by, init, ttl)
end

return _M
