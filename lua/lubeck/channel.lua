-- lubeck.channel(name): pub/sub between the requests of a host, and of every
-- host joined by `--redis` (docs/channels.md). Values travel as JSON (so they
-- reach every generation, every worker and every host), which means a
-- published value must be JSON-encodable: nil, booleans, numbers, strings and
-- tables of those. Delivery is at most once, to whoever waits at that moment.
local core = require "lubeck.core"
local json = require "lubeck.json"

local setmetatable, type, error, tostring, pcall = setmetatable, type, error, tostring, pcall
local decode = json.decode
local channel_wait, channel_publish = core.channel.wait, core.channel.publish

local _M = {}
local Channel = {}
Channel.__index = Channel
Channel.__tostring = function(self) return "lubeck.channel(" .. self.name .. ")" end

function _M.new(name)
    if type(name) ~= "string" or name == "" then
        error("lubeck.channel: name must be a non-empty string", 2)
    end
    return setmetatable({ name = name }, Channel)
end

-- Wakes every waiter (this worker's at once; the other workers' through the
-- host's bus, other hosts' through Redis); returns how many were woken here.
function Channel:publish(value)
    local ok, payload = pcall(json.encode, { value })
    if not ok then error("channel:publish: value is not JSON-encodable: " .. tostring(payload), 2) end
    return channel_publish(self.name, payload)
end

-- Waits for the next publish: value | nil, "timeout" | nil, "closed" (the client
-- went away) | nil, "closing" (the host is stopping: answer now).
function Channel:wait(timeout)
    local payload, err = channel_wait(self.name, timeout)
    if not payload then return nil, err end
    local value = decode(payload)[1]
    if value == json.null then value = nil end
    return value
end

return _M
