-- The spec app for docs/reference.md, Requests: echoes what the handler sees.
-- Driven in-process by tests/spec/request_spec.lua.
local lubeck = require "lubeck"

local app = lubeck.app{ name = "request" }

app:route("/fields/:id", function(req, id)
    return {
        method = req.method, path = req.path, query = req.query, uri = req.uri,
        version = req.version, remote_addr = req.remote_addr, conn_id = req.conn_id,
        sender = req.sender, params = req.params, id = id,
    }
end)

app:route("/args", function(req)
    return {
        args = req:args(),
        one = req:arg("one"),
        missing = req:arg("missing"),
        default = req:arg("missing", "fallback"),
        list = req:arg_list("many"),
        empty_list = req:arg_list("nothing"),
    }
end)

-- req:arg and req:cookie alone (no list or table built first): the host reads
-- the one value in C.
app:get("/one-arg", function(req)
    return { one = req:arg("one"), enc = req:arg("a b"), default = req:arg("zzz", "dflt") }
end)

app:get("/one-cookie", function(req)
    return { a = req:cookie("a"), b = req:cookie("b"), missing = req:cookie("zzz") }
end)

-- A request kept past its end (in a global here): reading from it is an error
-- that names the cause, not a read of whatever request took its slot.
local kept
app:get("/keep", function(req) kept = req; return "kept" end)
app:get("/use-kept", function()
    local ok_arg, err_arg = pcall(kept.arg, kept, "one")
    local ok_cookie, err_cookie = pcall(kept.cookie, kept, "a")
    return { arg = ok_arg or err_arg, cookie = ok_cookie or err_cookie }
end)
app:get("/number-name", function(req)
    return { arg = req:arg(7), cookie = req:cookie(7) }
end)
app:get("/long-query", function(req)
    return { n = #req:arg("long") }
end)

app:post("/json", function(req)
    local value, err = req:json()
    return { value = value, err = err }
end)

app:get("/cookies", function(req)
    return { a = req:cookie("a"), b = req:cookie("b"), missing = req:cookie("zzz"), all = req.cookies }
end)

app:get("/headers", function(req)
    return {
        upper = req.headers["X-Thing"], lower = req.headers["x-thing"], mixed = req.headers["X-tHiNg"],
        call = req:header("X-THING"),
        multi_field = req.headers["x-multi"],
        multi_joined = req:header("X-Multi"),
        absent = req:header("x-absent"),
        host = req.headers.Host,
    }
end)

app:post("/body", function(req) return { body = req.body, length = #req.body } end)

return app
