-- Hostile input and faults (tests/e2e/test_hostile.py).
local lubeck = require "lubeck"

local app = lubeck.app{ name = "hostile" }

app:get("/", function() return "ok" end)

app:get("/slow", function() lubeck.sleep(1); return "slow" end)

-- Echoes a query argument into a response header: a CR/LF in it must never
-- reach the client's head.
app:get("/echo-header", function(req)
    return 200, "echoed", { ["X-Echo"] = req:arg("v", "") }
end)

app:get("/cookies", function(req)
    local n = 0
    for _ in pairs(req.cookies) do n = n + 1 end
    return { count = n, a = req:cookie("a") }
end)

app:post("/json", function(req)
    local value, err = req:json()
    if value == nil then return 400, { error = err } end
    return { ok = true }
end)

app:post("/form", function(req)
    return { fields = #req:arg_list("a") }
end)

app:post("/upload", function(req)
    local file = req.files.file
    local size
    if file and file.path then
        local f = assert(io.open(file.path, "rb"))
        size = f:seek("end")
        f:close()
    end
    return { size = size }
end)

local Failing = lubeck.Handler:extend()
function Failing:prepare()
    if self.req:arg("where") == "prepare" then error("boom in prepare") end
end
function Failing:get()
    local where = self.req:arg("where")
    if where == "thread" then
        local t = lubeck.spawn(function() error("boom in a thread") end)
        local ok, err = t:wait()
        return { thread_ok = ok, thread_err = tostring(err):match("boom in a thread") }
    end
    return "fine"
end
function Failing:on_finish()
    if self.req:arg("where") == "on_finish" then error("boom in on_finish") end
end
app:route("/fail", Failing)

return app
