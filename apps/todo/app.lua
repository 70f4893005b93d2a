-- A JSON todo API on app:resource, with a small page that uses it:
--   build/lubeck serve apps/todo   then open http://127.0.0.1:6767/
-- Set TODO_REDIS=host:port to keep the todos in Redis instead of in memory, or
-- TODO_PG=postgres://user:pw@host:port/db to keep them in a PostgreSQL table
-- "todos" (made on first use).
local lubeck = require "lubeck"
local model = require "lubeck.model"
local resource = require "lubeck.resource"

local app = lubeck.app{ name = "todo" }

local Todo = model.define("Todo", {
    title = model.string{ required = true, min = 1, max = 200, trim = true },   -- "   " is no title
    done = model.boolean{ default = false },
    order = model.integer{ min = 0 },
    due = model.datetime{},
    tags = model.list(model.string{ min = 1, max = 20 }, { max = 10 }),
    owner = model.email{ private = true },
})

local store
local redis_at = os.getenv("TODO_REDIS")
if redis_at then
    local host, port = redis_at:match("^([^:]+):(%d+)$")
    store = resource.redis_store{ host = host, port = tonumber(port), prefix = "todo" }
end
local pg_dsn = os.getenv("TODO_PG")
if pg_dsn then
    store = require("lubeck.pg_store").new(pg_dsn, "todos", { create = [[
        create table if not exists todos (
            id bigserial primary key, title text not null, done boolean not null default false,
            "order" integer, due timestamptz, tags text[], owner text)]] })
end

app:resource("/todos", Todo, store)

app:get("/", function(req)
    return 302, "", { Location = "/static/index.html" }
end)

app:get("/schema", function() return Todo:schema() end)

return app
