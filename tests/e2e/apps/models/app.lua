-- Test app for tests/e2e/test_models.py: models, forms, multipart, uploads, resources.
local lubeck = require "lubeck"
local model = require "lubeck.model"
local resource = require "lubeck.resource"

local app = lubeck.app{ name = "models" }

local Address = model.define("Address", {
    city = model.string{ required = true, max = 50 },
    zip = model.string{ pattern = "^[0-9]{5}$" },
})

local Todo = model.define("Todo", {
    title = model.string{ required = true, min = 1, max = 200 },
    done = model.boolean{ default = false },
    order = model.integer{ min = 0, max = 1000 },
    owner = model.email{ private = true },
    tags = model.list(model.string{ max = 20 }, { max = 10 }),
})

local Everything = model.define("Everything", {
    s = model.string{ min = 2, max = 5 },
    color = model.string{ choices = { "red", "green" } },
    n = model.number{ min = -1.5, max = 1.5 },
    i = model.integer{ min = 0 },
    b = model.boolean{},
    email = model.email{},
    url = model.url{},
    id = model.uuid{},
    at = model.datetime{},
    address = model.object(Address),
    points = model.list(model.integer{ min = 0 }, { min = 1, max = 3 }),
    secret = model.string{ private = true, default = "s3" },
})

local Validated = lubeck.Handler:extend()
function Validated:post()
    local v = self:validate(Everything)
    return Everything:public(v)
end
app:route("/everything", Validated)

local Form = lubeck.Handler:extend()
function Form:post()
    return self:validate(Todo)
end
app:route("/todo-form", Form)

app:get("/schema", function() return Todo:schema() end)

-- Fields and files of a form, echoed.
app:post("/echo", function(req)
    local files = {}
    for name, f in pairs(req.files) do
        files[name] = { filename = f.filename, content_type = f.content_type,
                        size = f.body and #f.body or nil, path = f.path,
                        head = f.body and f.body:sub(1, 16) or nil }
    end
    return { args = req:args(), tags = req:arg_list("tag"), files = files }
end)

-- An async upload: what the handler sees.
app:route("/upload", function(req)
    local files = {}
    for name, f in pairs(req.files) do
        local size
        if f.path then
            local h = io.open(f.path, "rb"); size = h:seek("end"); h:close()
        end
        files[name] = { filename = f.filename, content_type = f.content_type, path = f.path,
                        size = size or #f.body }
    end
    return { files = files, body_size = #req.body, args = req:args() }
end, { "POST", "PUT" })

app:resource("/todos", Todo)
local port = tonumber(os.getenv("LUBECK_TEST_REDIS_PORT") or "")
if port then
    app:resource("/rtodos", Todo, resource.redis_store{ host = "127.0.0.1", port = port,
                                                         prefix = "lubecktest" .. port })
end

return app
