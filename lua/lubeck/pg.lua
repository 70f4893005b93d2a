-- PostgreSQL on libpq, driven by the host's loop: a query suspends only the
-- calling request's coroutine (docs/postgres.md).
--   local pg = require "lubeck.pg"
--   local db = assert(pg.connect("postgres://app:secret@127.0.0.1:5432/app"))
--   local rows, err = db:query("select id, title from todos where id = $1", id)
--   db:transaction(function(tx) tx:query(...) end)   -- commit on return, rollback on error
--   db:keepalive()                                    -- back to the pool (or db:close())
--   local events = pg.listen(dsn, "events")           -- NOTIFY events → lubeck.channel("events")
local core = require "lubeck.core"
local channel = require "lubeck.channel"
local cjson = require("cjson").new()

local setmetatable, type, error, pcall, select, tostring, pairs = setmetatable, type, error, pcall, select, tostring, pairs
local ipairs, unpack, sort, concat = ipairs, unpack, table.sort, table.concat
local pg_connect, pg_listen = core.pg.connect, core.pg.listen

local _M = { _VERSION = "0.1" }

-- A NULL inside an array or a JSON value (cjson.null); SQL NULL in a row is nil.
_M.null = cjson.null
core.pg.codec(cjson.encode, cjson.decode)

local DB = {}
local mt = { __index = DB, __tostring = function(self) return "lubeck.pg connection " .. tostring(self.conn) end }

-- Options that are lubeck's, not libpq's.
local OWN = { timeout = true }
local RENAMED = { database = "dbname" }

-- A table of settings as a libpq key=value string, keys sorted so the same
-- settings always make the same pool key.
local function conninfo(t)
    local keys = {}
    for k in pairs(t) do
        if type(k) ~= "string" then error("pg.connect: option names are strings", 3) end
        if not OWN[k] then keys[#keys + 1] = k end
    end
    sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do
        local v = tostring(t[k]):gsub("\\", "\\\\"):gsub("'", "\\'")
        parts[i] = (RENAMED[k] or k) .. "='" .. v .. "'"
    end
    return concat(parts, " ")
end

-- pg.connect(dsn | { host=, port=, user=, password=, database=, sslmode=, ... } [, { timeout = ms }])
-- → db | nil, err. A pooled connection of the same DSN is reused when there is one.
function _M.connect(dsn, opts)
    if type(dsn) == "table" then
        opts = opts or dsn
        dsn = conninfo(dsn)
    elseif type(dsn) ~= "string" then
        error("pg.connect: expected a DSN string or a table of settings", 2)
    end
    local conn, err = pg_connect(dsn, opts and opts.timeout)
    if not conn then return nil, err end
    return setmetatable({ conn = conn, dsn = dsn }, mt)
end

-- pg.listen(dsn, name) → lubeck.channel(name): each NOTIFY on name is published
-- there with its payload string. Safe to call at the app's top level and again
-- on reload; one connection per DSN and process listens for every name.
function _M.listen(dsn, name)
    if type(dsn) == "table" then dsn = conninfo(dsn) end
    if type(dsn) ~= "string" then error("pg.listen: expected a DSN", 2) end
    if type(name) ~= "string" or name == "" then error("pg.listen: expected a channel name", 2) end
    pg_listen(dsn, name)
    return channel.new(name)
end

-- "name" → "\"name\"", for table and column names built into SQL text.
function _M.quote_identifier(name)
    return '"' .. tostring(name):gsub('"', '""') .. '"'
end

-- Number of idle connections in this process's pool (all DSNs).
function _M.pooled()
    return core.pg.pooled()
end

-- db:query(sql, ...) → rows | nil, err, fields. $1..$n take the arguments
-- (nil or pg.null is NULL); rows.command, rows.tag, rows.affected, rows.columns.
function DB:query(sql, ...)
    if type(sql) ~= "string" then error("db:query: SQL must be a string", 2) end
    return self.conn:query(sql, ...)
end

function DB:settimeout(ms)
    if type(ms) ~= "number" then error("db:settimeout: milliseconds expected", 2) end
    self.conn:settimeout(ms)
end

-- Back to the pool; refused (nil, why, and closed) in a transaction, with a
-- query running or when the connection failed.
function DB:keepalive(idle_ms, size)
    return self.conn:keepalive(idle_ms, size)
end

function DB:close()
    return self.conn:close()
end

function DB:backend_pid()
    return self.conn:backend_pid()
end

-- "idle", "in a transaction", "in a failed transaction", "busy", "closed", ...
function DB:state()
    return self.conn:state()
end

-- Times this connection was taken from the pool (0: made for this caller).
function DB:reused()
    return self.conn:reused()
end

local function pack(...) return { n = select("#", ...), ... } end

-- db:transaction(fn): BEGIN, fn(db), COMMIT. An error raised in fn rolls back
-- and is raised again; a statement that failed inside (nil, err) makes the
-- COMMIT a rollback, reported as nil, err. Returns fn's results (true if none).
function DB:transaction(fn)
    if type(fn) ~= "function" then error("db:transaction: expected a function", 2) end
    if self.in_transaction then error("db:transaction: already in a transaction", 2) end
    local ok, err, fields = self:query("BEGIN")
    if not ok then return nil, err, fields end
    self.in_transaction = true
    local results = pack(pcall(fn, self))
    self.in_transaction = false
    if not results[1] then
        self:query("ROLLBACK")   -- on a lost connection this fails too: nothing to undo then
        error(results[2], 0)
    end
    local done, cerr, cfields = self:query("COMMIT")
    if not done then return nil, cerr, cfields end
    if done.command == "ROLLBACK" then
        return nil, "transaction rolled back: a statement in it failed"
    end
    if results.n == 1 then return true end
    return unpack(results, 2, results.n)
end

return _M
