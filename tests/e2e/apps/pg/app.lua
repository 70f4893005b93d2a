-- The end-to-end test app for lubeck.pg, driven by tests/e2e/test_pg.py
-- against a PostgreSQL the test starts. LUBECK_TEST_PG is the DSN of the
-- test's database (as its owner); ?user=&password= pick another role.
local lubeck = require "lubeck"
local pg = require "lubeck.pg"
local cjson = require "cjson"
local ffi = require "ffi"
ffi.cdef "int getpid(void);"

-- LUBECK_TEST_PG_REQUEST_TIMEOUT: test_pg's 504 test runs a server of its own with a short one.
local app = lubeck.app{ name = "pg", request_timeout = tonumber(os.getenv("LUBECK_TEST_PG_REQUEST_TIMEOUT") or "30") }
local DSN = assert(os.getenv("LUBECK_TEST_PG"), "LUBECK_TEST_PG is not set")
local events = pg.listen(DSN, "lubeck_events")

local function dsn_for(req)
    local user = req:arg("user")
    if not user then return DSN end
    return DSN:gsub("//[^@]*@", "//" .. user .. ":" .. req:arg("password", "") .. "@")
end

local function connect(req)
    local db, err = pg.connect(dsn_for(req), { timeout = 5000 })
    if not db then lubeck.abort(502, { where = "connect", err = err }) end
    return db
end

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- A value as the test can compare it: { type, text } (numbers in full).
local function describe(v, bytes)
    if v == pg.null then return { "null" } end
    local t = type(v)
    if t == "number" then return { t, string.format("%.17g", v) } end
    if t == "string" then return { t, bytes and hex(v) or v } end
    if t == "table" then
        local out = {}
        for k, x in pairs(v) do out[type(k) == "number" and k or tostring(k)] = describe(x, bytes) end
        return { t, out }
    end
    return { t, tostring(v) }
end

app:get("/types", function(req)
    local db = connect(req)
    local rows, err = db:query([==[
        select 1::int2 as i2, 2147483647::int4 as i4, -42::int8 as i8,
               9007199254740992::int8 as i8_max, 9007199254740993::int8 as i8_big,
               '-9223372036854775808'::int8 as i8_min,
               1.5::float4 as f4, 0.1::float8 as f8, 'NaN'::float8 as fnan,
               '-Infinity'::float8 as fninf, 12345678901234567890.123456789::numeric as num,
               true as t, false as f, 'héllo ''q'' "d"'::text as txt, 'ab'::char(3) as bpc,
               '\x00ff410a'::bytea as bin, '{"a":[1,2,null],"b":"c"}'::json as js,
               '{"k":true,"n":null}'::jsonb as jsb, 'null'::jsonb as jsnull,
               '2024-02-29 13:14:15.5'::timestamp as ts,
               '2024-02-29 13:14:15+02'::timestamptz as tstz,
               'infinity'::timestamptz as tsinf,
               '2024-02-29'::date as d, '13:14:15'::time as tm, '1 day 02:00:00'::interval as iv,
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as id,
               array[1, 2, null]::int4[] as ai, array['a b', 'c"d', null, '', 'NULL', 'x\y']::text[] as at,
               array[[1, 2], [3, 4]]::int8[] as a2, array[true, false]::bool[] as ab,
               array['\x01ff'::bytea] as abin, array['2024-01-01 00:00:00+00'::timestamptz] as ats,
               array['{"a":1}'::jsonb] as ajs, array[1.25, 2]::float8[] as af, array[1.10]::numeric[] as an,
               '{}'::int4[] as aempty, '[0:1]={7,8}'::int4[] as abounds,
               null::int4 as n
    ]==])
    if not rows then return 500, { err = err } end
    local row = rows[1]
    local out = {}
    for _, name in ipairs(rows.columns) do
        if row[name] ~= nil then
            out[name] = describe(row[name], name == "bin" or name == "abin")
        end
    end
    db:keepalive()
    return { values = out, columns = rows.columns, n_is_nil = row.n == nil,
             n_is_a_column = rows.columns[#rows.columns] == "n", missing_is_nil = row.nope == nil,
             count = #rows, command = rows.command, tag = rows.tag, affected = rows.affected }
end)

app:get("/params", function(req)
    local db = connect(req)
    local quoted = [[O'Reilly "quoted" \ back'slash; DROP TABLE x; --]]
    local binary = {}
    for i = 1, 255 do binary[i] = string.char(i) end
    binary = table.concat(binary)
    local with_nul = "a\0b\0\255"
    local rows, err = db:query([[
        select $1::text as a, $2::int4 as b, $3::bytea as c, length($3::bytea) as clen,
               $4::jsonb as d, $5::text[] as e, $6::bool as f, $7::float8 as g, $8::int8 as h,
               $9::text is null as i, $10::bytea as j, $11::int4[] as l, $12::bytea[] as m
    ]], quoted, 42, binary, { a = { 1, 2 }, s = "x'y" }, { "x", 'y "z"', "back\\slash", pg.null },
        true, 0.1, "9007199254740993", nil, with_nul, { { 1, 2 }, { 3, 4 } }, { with_nul, "" })
    if not rows then return 500, { err = err } end
    local r = rows[1]
    local nul_rows, nul_err = db:query("select $1::text as t", "a\0b")
    db:keepalive()
    return {
        a = r.a == quoted, b = r.b, c = r.c == binary, clen = r.clen, d = r.d, e = describe(r.e),
        f = r.f, g = r.g == 0.1, h = r.h, i = r.i, j = r.j == with_nul,
        l = r.l, m = r.m[1] == with_nul and r.m[2] == "",
        nul_rows = nul_rows and #nul_rows, nul_err = nul_err,
    }
end)

app:get("/errors", function(req)
    local db = connect(req)
    local out = {}
    local _, v, err, fields
    v, err, fields = db:query("select * from no_such_table")
    out.missing = { rows = v ~= nil, err = err, fields = fields }
    _, err, fields = db:query("selec 1")
    out.syntax = { err = err, fields = fields }
    db:query("create temp table uniq (id int primary key)")
    db:query("insert into uniq values (1)")
    _, err, fields = db:query("insert into uniq values ($1)", 1)
    out.unique = { err = err, fields = fields }
    _, err = db:query("select $1::int4 as x", "not a number")
    out.bad_param = { err = err }
    _, err = db:query("select $1::int4 + $2::int4 as x", 1)
    out.arity = { err = err }
    v = db:query("select 1 as one")
    out.after = v and v[1].one
    out.state = db:state()
    db:keepalive()
    return out
end)

app:get("/commands", function(req)
    local db = connect(req)
    db:query("create temp table cmd (id serial primary key, v text)")
    local ins = db:query("insert into cmd (v) values ('a'), ('b'), ('c')")
    local upd = db:query("update cmd set v = v || '!' where id > $1", 1)
    local multi = db:query("insert into cmd (v) values ('d'); select count(*)::int as n from cmd")
    local ret = db:query("insert into cmd (v) values ($1) returning id, v", "e")
    db:keepalive()
    return { insert = { ins.command, ins.affected, ins.tag }, update = { upd.command, upd.affected },
             multi = { multi.command, multi[1].n }, returning = ret[1] }
end)

app:get("/prepared", function(req)
    local db = connect(req)
    local sql = "select $1::int4 * 2 as twice"
    local got = {}
    for i = 1, 3 do got[i] = db:query(sql, i)[1].twice end
    local count = db:query("select count(*)::int as n from pg_prepared_statements where statement = $1", sql)
    db:query("deallocate all")
    local lost, lost_err = db:query(sql, 5)            -- the session forgot it: an error, once
    local again = db:query(sql, 6)                     -- then prepared anew
    db:keepalive()
    return { got = got, prepared = count[1].n, lost = lost ~= nil, lost_err = lost_err,
             again = again and again[1].twice }
end)

-- The backend of a pooled connection, and how often it was reused.
app:get("/pid", function(req)
    local db = connect(req)
    local who = db:query("select current_user as u")
    local out = { pid = db:backend_pid(), reused = db:reused(), user = who and who[1].u }
    out.kept = db:keepalive()
    out.pooled = pg.pooled()
    return out
end)

-- A slow query, tagged so the test finds it in pg_stat_activity.
app:get("/sleep", function(req)
    local db = connect(req)
    db:settimeout(tonumber(req:arg("timeout", "10000")))
    local started = lubeck.now()
    local rows, err, fields = db:query("select pg_sleep($1) /* " .. req:arg("tag", "") .. " */",
                                       tonumber(req:arg("s", "1")))
    local out = { ok = rows ~= nil, err = err, sqlstate = fields and fields.sqlstate,
                  waited = lubeck.now() - started, state = db:state() }
    local kept, why = db:keepalive(nil, 200)
    out.kept, out.why = kept, why
    return out
end)

app:get("/tx", function(req)
    local db = connect(req)
    db:query("create table if not exists tx_items (id serial primary key, v text not null)")
    db:query("delete from tx_items")
    local ok, raised = pcall(db.transaction, db, function(tx)
        tx:query("insert into tx_items (v) values ($1)", "rolled back")
        error({ code = "boom" })
    end)
    local after_error = db:query("select count(*)::int as n from tx_items")[1].n
    local committed = db:transaction(function(tx)
        tx:query("insert into tx_items (v) values ($1)", "kept")
        tx:query("insert into tx_items (v) values ($1)", "kept too")
        return "done"
    end)
    local failed, ferr = db:transaction(function(tx)
        tx:query("insert into tx_items (v) values ($1)", "lost")
        tx:query("insert into tx_items (v) values (null)")      -- fails: not null
    end)
    local final = db:query("select v from tx_items order by id")
    local vs = {}
    for i, r in ipairs(final) do vs[i] = r.v end
    -- A connection left inside a transaction is never pooled.
    db:query("begin")
    local kept, why = db:keepalive()
    return { raised_ok = ok, raised = raised, after_error = after_error, committed = committed,
             failed = failed == nil, ferr = ferr, values = vs, kept = kept, why = why }
end)

app:get("/listen", function(req)
    local v, err = events:wait(tonumber(req:arg("timeout", "5")))
    return { payload = v, err = err, worker = ffi.C.getpid() }
end)

app:get("/notify", function(req)
    local db = connect(req)
    local ok, err = db:query("select pg_notify('lubeck_events', $1)", req:arg("payload", ""))
    db:keepalive()
    return { ok = ok ~= nil, err = err }
end)

app:get("/stats", function()
    return { pooled = pg.pooled(), worker = ffi.C.getpid() }
end)

-- The benchmark pair (tests/e2e/bench_pg.py): one row by primary key from
-- PostgreSQL, and the same item from Redis.
app:get("/redis-item", function(req)
    local redis = require "lubeck.redis"
    local r, err = redis.connect{ port = tonumber(os.getenv("LUBECK_TEST_REDIS_PORT")) }
    if not r then return 502, err end
    local v = r:get("item:" .. req:arg("id", "1"))
    r:keepalive()
    return v
end)

app:get("/item", function(req)
    local db = connect(req)
    local rows, err = db:query("select id, title from bench_items where id = $1", tonumber(req:arg("id", "1")))
    db:keepalive(nil, 100)
    if not rows then return 500, err end
    return cjson.encode(rows[1])
end)

return app
