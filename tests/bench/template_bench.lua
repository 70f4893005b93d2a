-- Render rate of a 50-line template with a 100-row loop (lubeck.template) vs
-- the same page built by string concatenation in Lua, measured in one run.
--   LUA_PATH='lua/?.lua' luajit tests/bench/template_bench.lua [seconds]   (from the repository root)
local template = require "lubeck.template"

local seconds = tonumber(arg and arg[1]) or 2
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local dir = here .. "/template_bench"

local escape = template.escape
local format, concat = string.format, table.concat

local rows = {}
for i = 1, 100 do
    rows[i] = { id = i, customer_id = 1000 + i, customer = (i % 7 == 0) and "O'Brien & Sons <Ltd>" or "Customer " .. i,
        item = "Widget #" .. i, quantity = i % 5 + 1, price = i * 1.25, shipped = i % 3 == 0 }
end
local ctx = { title = "Orders & invoices", user = { name = "Ann <admin>" }, rows = rows,
    footer_html = "<a href=\"/help\">Help</a>" }

-- The same page by hand: what a handler would write without templates.
local function by_hand(c)
    local out = {}
    local n = 0
    local function add(s) n = n + 1; out[n] = s end
    local user = escape(c.user.name)
    add('<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n  <title>' .. escape(c.title) .. '</title>\n'
        .. '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        .. '  <link rel="stylesheet" href="/static/site.css">\n</head>\n<body>\n  <header>\n    <nav>\n'
        .. '      <a href="/">Home</a>\n      <a href="/orders">Orders</a>\n      <a href="/customers">Customers</a>\n'
        .. '      <a href="/account">Signed in as ' .. user .. '</a>\n    </nav>\n  </header>\n  <main>\n'
        .. '    <h1>' .. escape(c.title) .. '</h1>\n'
        .. '    <p class="lead">Showing ' .. #c.rows .. ' orders for ' .. user .. '.</p>\n'
        .. '    <table class="orders">\n      <thead>\n        <tr>\n          <th>#</th>\n          <th>Customer</th>\n'
        .. '          <th>Item</th>\n          <th>Quantity</th>\n          <th>Price</th>\n          <th>Status</th>\n'
        .. '        </tr>\n      </thead>\n      <tbody>\n')
    for i, row in ipairs(c.rows) do
        add('        <tr class="' .. (i % 2 == 0 and "even" or "odd") .. '">\n'
            .. '          <td>' .. escape(row.id) .. '</td>\n'
            .. '          <td><a href="/customers/' .. escape(row.customer_id) .. '">' .. escape(row.customer) .. '</a></td>\n'
            .. '          <td>' .. escape(row.item) .. '</td>\n'
            .. '          <td>' .. escape(row.quantity) .. '</td>\n'
            .. '          <td>' .. escape(format("%.2f", row.price)) .. '</td>\n'
            .. '          <td>' .. (row.shipped and "shipped" or "pending") .. '</td>\n'
            .. '        </tr>\n')
    end
    add('      </tbody>\n    </table>\n  </main>\n  <footer>\n    <p>Generated for ' .. user .. ' &middot; '
        .. c.footer_html .. '</p>\n  </footer>\n</body>\n</html>\n')
    return concat(out, "", 1, n)
end

local engine = template.new{ dir = dir }
local compiled = engine:load("page.html")
local function env_of(c)   -- what engine:render hands a compiled template
    local env = setmetatable({}, { __index = setmetatable({ escape = escape }, { __index = _G }) })
    for k, v in pairs(c) do env[k] = v end
    return env
end

local variants = {
    { "concatenation (by hand)", function() return by_hand(ctx) end },
    { "template: engine:render (stat + env + layout check)", function() return engine:render("page.html", ctx) end },
    { "template: compiled function only", function() return compiled(env_of(ctx)) end },
}

local expected = by_hand(ctx)
for _, v in ipairs(variants) do
    local got = v[2]()
    if got ~= expected then
        io.stderr:write("output differs: " .. v[1] .. "\n")
        io.open("/tmp/template_bench_" .. _ .. ".html", "w"):write(got)
        io.open("/tmp/template_bench_expected.html", "w"):write(expected)
        os.exit(1)
    end
end

local function rate(fn)
    for _ = 1, 2000 do fn() end                 -- warm up (JIT)
    local n, started = 0, os.clock()
    local elapsed
    repeat
        for _ = 1, 500 do fn() end
        n = n + 500
        elapsed = os.clock() - started
    until elapsed >= seconds
    return n / elapsed
end

print(format("page: %d bytes, %d rows; %s, %.1f s per variant", #expected, #rows, jit and jit.version or _VERSION, seconds))
local base
for _, v in ipairs(variants) do
    local r = rate(v[2])
    base = base or r
    print(format("%-52s %9.0f renders/s  (%.2fx concatenation)", v[1], r, r / base))
end
