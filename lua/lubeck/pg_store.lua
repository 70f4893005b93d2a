-- A lubeck.resource store on a PostgreSQL table, through lubeck.pg:
--   local pg_store = require "lubeck.pg_store"
--   app:resource("/todos", Todo, pg_store.new(dsn, "todos", { create = "create table if not exists ..." }))
-- The table has an `id` primary key the database fills (bigserial, identity)
-- and one column per model field, named like the field. An item is its row:
-- a NULL column is an absent field, the id goes out as a string. `create`
-- (optional) runs once per process before the first use.
local pg = require "lubeck.pg"

local type, tostring, pairs, ipairs, error, concat, unpack = type, tostring, pairs, ipairs, error, table.concat, unpack
local quote = pg.quote_identifier

local _M = { _VERSION = "0.1" }

-- SQLSTATEs that mean "no such item" for an id the table cannot hold ("abc"
-- for a bigint id, a number too large).
local BAD_ID = { ["22P02"] = true, ["22003"] = true }
-- ... and that mean another worker created the table first.
local ALREADY = { ["42P07"] = true, ["23505"] = true }

local function to_item(row)
    if row.id ~= nil then row.id = tostring(row.id) end
    return row
end

function _M.new(dsn, table_name, opts)
    if type(dsn) ~= "string" and type(dsn) ~= "table" then
        error("pg_store.new(dsn, table): dsn must be a DSN string or a table of settings", 2)
    end
    if type(table_name) ~= "string" or table_name == "" then
        error("pg_store.new(dsn, table): table must be a name", 2)
    end
    opts = opts or {}
    local tbl = quote(table_name)
    local columns            -- the table's columns but id, read once
    local select_all = "select * from " .. tbl

    -- Runs fn(db) on a pooled connection, after the one-time setup.
    local function with(fn)
        local db, err = pg.connect(dsn, { timeout = opts.timeout })
        if not db then return nil, err end
        if not columns then
            if opts.create then
                local ok, cerr, fields = db:query(opts.create)
                if not ok and not (fields and ALREADY[fields.sqlstate]) then
                    db:close()
                    return nil, cerr
                end
            end
            local rows, qerr = db:query(select_all .. " where false")
            if not rows then
                db:close()
                return nil, qerr
            end
            local list = {}
            for _, name in ipairs(rows.columns) do
                if name ~= "id" then list[#list + 1] = name end
            end
            columns = list
        end
        local a, b = fn(db)
        db:keepalive()   -- closes it instead when it is not clean
        return a, b
    end

    local function fields_of(item)
        local known = {}
        for _, name in ipairs(columns) do known[name] = true end
        for k in pairs(item) do
            if k ~= "id" and not known[k] then
                return nil, "table " .. table_name .. " has no column for field " .. tostring(k)
            end
        end
        return true
    end

    local store = {}

    function store.list()
        return with(function(db)
            local rows, err = db:query(select_all .. " order by id")
            if not rows then return nil, err end
            for _, row in ipairs(rows) do to_item(row) end
            return rows
        end)
    end

    function store.get(id)
        return with(function(db)
            local rows, err, fields = db:query(select_all .. " where id = $1", id)
            if not rows then
                if fields and BAD_ID[fields.sqlstate] then return nil end
                return nil, err
            end
            return rows[1] and to_item(rows[1])
        end)
    end

    function store.create(item)
        return with(function(db)
            local ok, err = fields_of(item)
            if not ok then return nil, err end
            local names, marks, values = {}, {}, {}
            for _, name in ipairs(columns) do
                if item[name] ~= nil then
                    values[#values + 1] = item[name]
                    names[#names + 1] = quote(name)
                    marks[#marks + 1] = "$" .. #values
                end
            end
            local sql = #names == 0 and ("insert into " .. tbl .. " default values returning id")
                or ("insert into " .. tbl .. " (" .. concat(names, ", ") .. ") values (" ..
                    concat(marks, ", ") .. ") returning id")
            local rows, qerr = db:query(sql, unpack(values, 1, #values))
            if not rows then return nil, qerr end
            return tostring(rows[1].id)
        end)
    end

    -- The whole item replaces the row: a field it lacks becomes NULL.
    function store.put(id, item)
        return with(function(db)
            local ok, err = fields_of(item)
            if not ok then return nil, err end
            local sets, values = {}, {}
            for i, name in ipairs(columns) do
                values[i] = item[name] == nil and pg.null or item[name]
                sets[i] = quote(name) .. " = $" .. i
            end
            values[#columns + 1] = id
            if #sets == 0 then return true end
            local rows, qerr = db:query("update " .. tbl .. " set " .. concat(sets, ", ") ..
                                        " where id = $" .. (#columns + 1), unpack(values, 1, #columns + 1))
            if not rows then return nil, qerr end
            return true
        end)
    end

    function store.delete(id)
        return with(function(db)
            local rows, err, fields = db:query("delete from " .. tbl .. " where id = $1", id)
            if not rows then
                if fields and BAD_ID[fields.sqlstate] then return false end
                return nil, err
            end
            return rows.affected > 0
        end)
    end

    return store
end

return _M
