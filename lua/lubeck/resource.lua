-- REST resources over a model (docs/reference.md, Models and resources):
--   app:resource("/todos", Todo [, store])
--   GET /todos            200 JSON array
--   POST /todos           201, Location: /todos/<id>, the item
--   GET /todos/:id        200 item | 404
--   PUT /todos/:id        200 item (whole item validated) | 400 | 404
--   PATCH /todos/:id      200 item (the stored item with the body's fields over it) | 400 | 404
--   DELETE /todos/:id     204 | 404
-- Bodies are JSON objects or forms (urlencoded or multipart), as self:validate reads them.
-- Items carry their id; private fields are stored but never sent.
--
-- A store is a table of functions (each may return nil, err on failure):
--   list() → { item, ... }   get(id) → item | nil   create(item) → id
--   put(id, item) → true     delete(id) → true | false (no such item)
local json = require "lubeck.json"   -- numbers keep every digit
local model = require "lubeck.model"
local errors = require "lubeck.errors"

local type, tostring, pairs, ipairs, error, concat, unpack =
    type, tostring, pairs, ipairs, error, table.concat, unpack

local _M = { _VERSION = "0.1" }

local JSON = { ["Content-Type"] = "application/json" }

local function abort_json(status, message)
    errors.abort(status, { status = status, error = message })
end

-- In-memory store: one table per resource, ids 1, 2, 3, ... in this worker.
function _M.memory_store()
    local items, order, next_id = {}, {}, 0
    local store = {}
    function store.list()
        local out = {}
        for _, id in ipairs(order) do
            if items[id] then out[#out + 1] = items[id] end
        end
        return out
    end
    function store.get(id) return items[id] end
    function store.create(item)
        next_id = next_id + 1
        local id = tostring(next_id)
        items[id] = item
        order[#order + 1] = id
        return id
    end
    function store.put(id, item)
        items[id] = item
        return true
    end
    function store.delete(id)
        if not items[id] then return false end
        items[id] = nil
        for i, v in ipairs(order) do
            if v == id then table.remove(order, i) break end
        end
        return true
    end
    return store
end

-- Redis store through lubeck.redis: items as JSON strings under
-- PREFIX:item:<id>, ids from INCR PREFIX:next, order in the sorted set PREFIX:ids.
function _M.redis_store(opts)
    opts = opts or {}
    local redis = require "lubeck.redis"
    local prefix = opts.prefix or "lubeck"
    local conn_opts = { host = opts.host or "127.0.0.1", port = opts.port or 6379, timeout = opts.timeout }
    local function with(fn)
        local r, err = redis.connect(conn_opts)
        if not r then return nil, err end
        local a, b = fn(r)
        if a == nil and b then r:close() else r:keepalive() end
        return a, b
    end
    local function key(id) return prefix .. ":item:" .. id end
    local store = {}
    function store.list()
        return with(function(r)
            local ids, err = r:call("ZRANGE", prefix .. ":ids", 0, -1)
            if not ids then return nil, err end
            if #ids == 0 then return {} end
            local keys = {}
            for i, id in ipairs(ids) do keys[i] = key(id) end
            local raw, err2 = r:call("MGET", unpack(keys))
            if not raw then return nil, err2 end
            local out = {}
            for _, s in ipairs(raw) do
                if type(s) == "string" then out[#out + 1] = json.decode(s) end
            end
            return out
        end)
    end
    function store.get(id)
        return with(function(r)
            local s, err = r:call("GET", key(id))
            if type(s) ~= "string" then return nil, err end
            return json.decode(s)
        end)
    end
    function store.create(item)
        return with(function(r)
            local n, err = r:call("INCR", prefix .. ":next")
            if not n then return nil, err end
            local id = tostring(n)
            item.id = id
            local ok, err2 = r:call("SET", key(id), json.encode(item))
            if not ok then return nil, err2 end
            ok, err2 = r:call("ZADD", prefix .. ":ids", n, id)
            if not ok then return nil, err2 end
            return id
        end)
    end
    function store.put(id, item)
        return with(function(r)
            local ok, err = r:call("SET", key(id), json.encode(item), "XX")
            if not ok and err then return nil, err end
            return true
        end)
    end
    function store.delete(id)
        return with(function(r)
            local n, err = r:call("DEL", key(id))
            if not n then return nil, err end
            r:call("ZREM", prefix .. ":ids", id)
            return n > 0
        end)
    end
    return store
end

-- JSON text for a list (an empty one too: "[]", not cjson's "{}").
local function encode_list(list)
    if #list == 0 then return "[]" end
    local parts = {}
    for i, v in ipairs(list) do parts[i] = json.encode(v) end
    return "[" .. concat(parts, ",") .. "]"
end

local function checked(value, err)
    if value == nil and err then
        errors.abort(503, { status = 503, error = "store unavailable: " .. tostring(err) })
    end
    return value
end

-- What leaves the server: the public fields and the id.
local function out(m, id, item)
    local v = m:public(item)
    v.id = id
    return v
end

-- Adds the routes of a resource to app.
function _M.add(app, path, m, store, level)
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
        error("resource(path, Model): path must start with '/'", level)
    end
    if not model.is_model(m) then error("resource(path, Model): not a model from model.define", level) end
    store = store or _M.memory_store()
    path = path:gsub("/$", "")
    local item_path = path .. "/:id"

    local function find(id)
        local item = checked(store.get(id))
        if item == nil then abort_json(404, "not found") end
        return item
    end

    -- A JSON object, or a form (urlencoded or multipart) whose strings are
    -- converted as the model's kinds say; PATCH lays it over the stored item.
    local function body_of(req, base)
        local input, is_form = model.request_input(req, m)
        if type(input) ~= "table" then
            errors.abort(400, { status = 400, errors = { [""] = "must be an object" } })
        end
        if base then
            local merged = {}
            for k, v in pairs(base) do merged[k] = v end
            for k, v in pairs(input) do
                if not (is_form and v == "") then merged[k] = v end   -- an empty field is absent
            end
            input = merged
        end
        local value, errs = m:validate(input, { form = is_form })
        if not value then errors.abort(400, { status = 400, errors = errs }) end
        return value
    end

    app:get(path, function(req)
        local list = checked(store.list())
        local items = {}
        for i, item in ipairs(list) do items[i] = out(m, item.id, item) end
        return 200, encode_list(items), JSON
    end)
    app:post(path, function(req)
        local value = body_of(req)
        local id = checked(store.create(value))
        value.id = id
        local headers = { ["Content-Type"] = "application/json", Location = path .. "/" .. id }
        return 201, json.encode(out(m, id, value)), headers
    end)
    app:get(item_path, function(req, id)
        return 200, json.encode(out(m, id, find(id))), JSON
    end)
    local function replace(req, id, patch)
        local current = find(id)
        local value = body_of(req, patch and current or nil)
        value.id = id
        checked(store.put(id, value))
        return 200, json.encode(out(m, id, value)), JSON
    end
    app:put(item_path, function(req, id) return replace(req, id, false) end)
    app:patch(item_path, function(req, id) return replace(req, id, true) end)
    app:delete(item_path, function(req, id)
        if not checked(store.delete(id)) then abort_json(404, "not found") end
        return 204
    end)
    return app
end

return _M
