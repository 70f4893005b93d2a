-- The reader in front of workers and hosts (tests/e2e/test_dispatch.py,
-- test_pool.py): who answers, in what order, and who learns of a close.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "dispatch" }

local function pid() return lubeck.stats().pid end   -- which process answered

app:get("/pid", function() return tostring(pid()) end)
app:get("/slow", function(req)
    lubeck.sleep(tonumber(req:arg("s")) or 0.2)
    return tostring(pid())
end)
app:get("/spin", function() while true do end end)

-- A parked long poll: when its client goes away, the worker holding it
-- records the moment (lubeck.shared is one table for all workers of a host).
local learned = lubeck.shared("learned")
local never = lubeck.channel("never")
app:get("/park", function(req)
    local _, err = never:wait(30)
    if err == "closed" then learned:set(req:arg("t"), tostring(lubeck.now())) end
    return "woken"
end)
-- A long request that says which worker holds it.
app:get("/hold", function(req)
    learned:set("holder", tostring(pid()))
    lubeck.sleep(tonumber(req:arg("s")) or 5)
    return "held"
end)
app:get("/holder", function() return learned:get("holder") or "" end)
app:get("/learned", function(req)
    return { at = tonumber(learned:get(req:arg("t")) or ""), pid = pid() }
end)

-- Frames must come in the order the client sent them: "1", "2", ...; "end"
-- answers how many came and the first out of place (0: none).
local Order = lubeck.WebSocketHandler:extend()
function Order:on_open() self.n, self.bad = 0, 0 end
function Order:on_message(data)
    if data == "end" then
        return self:send(("%d %d %d"):format(self.n, self.bad, pid()))
    end
    self.n = self.n + 1
    if self.bad == 0 and tonumber(data) ~= self.n then self.bad = self.n end
end
app:route("/order", Order)

return app
