-- The spec app for the C↔Lua seam (docs/architecture.md, "The seam"): what
-- lubeck.core holds, and what each core.req.field position reads. Driven in-process
-- by tests/spec/seam_spec.lua.
local lubeck = require "lubeck"
local core = require "lubeck.core"
local Request = require "lubeck.request"

local app = lubeck.app{ name = "seam" }

-- name → the Lua type of what lubeck.core holds under it; a sub-table is
-- "table" and its entries are listed as "table.name".
app:get("/core", function()
    local kinds = {}
    for name, value in pairs(core) do
        kinds[name] = type(value)
        if type(value) == "table" then
            for sub, v in pairs(value) do kinds[name .. "." .. sub] = type(v) end
        end
    end
    return kinds
end)

-- What the host returns at each position request.lua reads a field from, and
-- what it does at the first position past that list.
app:route("/fields/:id", function(req)
    local read = {}
    for i, name in ipairs(Request.FIELDS) do
        read[i] = { name = name, value = core.req.field(req._handle, i) }
    end
    local ok, err = pcall(core.req.field, req._handle, #Request.FIELDS + 1)
    return { read = read, past_the_end = ok and "no error" or tostring(err) }
end)

return app
