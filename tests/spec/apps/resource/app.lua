-- The spec app for tests/spec/resource_spec.lua: a REST resource whose items
-- hold numbers past 14 digits, and routes for every method lubeck knows.
local lubeck = require "lubeck"
local model = require "lubeck.model"

local app = lubeck.app{ name = "resource" }

local Account = model.define("Account", {
    number = model.integer{ required = true },
    label = model.string{ max = 20 },
})
app:resource("/accounts", Account)

-- One route per helper: each answers with the method it saw.
local function echo(req) return req.method end
app:get("/verb", echo)
app:post("/verb", echo)
app:put("/verb", echo)
app:patch("/verb", echo)
app:delete("/verb", echo)

-- A class with two methods: OPTIONS and 405 list what it implements.
local Pair = lubeck.Handler:extend()
function Pair:get() return "got" end
function Pair:delete() return "deleted" end
app:route("/pair", Pair)

return app
