-- docs/architecture.md, "The seam": the list of lubeck.core there is the
-- whole table with its sub-tables, and every core.req.field position holds
-- the field request.lua names for it, read through the real host. (The pipeline entry's arguments
-- are checked in handler_spec.lua; the FFI declarations by the compiler, see
-- host/lua/lua_fast.h.) App: tests/spec/apps/seam.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local APP = here .. "apps/seam"
local ARCHITECTURE = here .. "../../docs/architecture.md"

-- The rows of the lubeck.core table in docs/architecture.md: name → type,
-- where a sub-table is a row of type "table" and each of its entries a row
-- "table.name" (the shape the seam app reports the real table in).
local function listed_in_docs()
    local f = assert(io.open(ARCHITECTURE, "rb"))
    local text = f:read("*a")
    f:close()
    local list = text:match("<!%-%- lubeck%.core:.-%-%->(.-)<!%-%- /lubeck%.core %-%->")
    assert(list, ARCHITECTURE .. ": no <!-- lubeck.core: ... --> list")
    local rows = {}
    for name, kind in list:gmatch("\n| `([%w_.]+)` | (%w+) |") do
        assert(rows[name] == nil, name .. " is listed twice")
        assert(not name:find("%.[^.]*%."), name .. ": lubeck.core has one level of sub-tables")
        rows[name] = kind
    end
    for name in pairs(rows) do
        local parent = name:match("^(.-)%.")
        assert(parent == nil or rows[parent] == "table",
            name .. " is listed, but not its sub-table " .. tostring(parent) .. " (a row of type table)")
    end
    return rows
end

describe("lubeck.core", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    it("holds exactly what docs/architecture.md lists, with the types it gives", function()
        local r = c:get("/core")
        assert.are.equal(200, r.status, r.body)
        local real, listed = cjson.decode(r.body), listed_in_docs()
        local unlisted, gone, wrong = {}, {}, {}
        for name, kind in pairs(real) do
            if not listed[name] then unlisted[#unlisted + 1] = name
            elseif listed[name] ~= kind then wrong[#wrong + 1] = name .. " is a " .. kind end
        end
        for name in pairs(listed) do
            if not real[name] then gone[#gone + 1] = name end
        end
        table.sort(unlisted); table.sort(gone); table.sort(wrong)
        assert.are.same({}, unlisted, "in lubeck.core but not in docs/architecture.md's list")
        assert.are.same({}, gone, "in docs/architecture.md's list but not in lubeck.core")
        assert.are.same({}, wrong, "listed in docs/architecture.md with another type")
        assert.is_true(next(real) ~= nil)
    end)
end)

describe("core.req.field", function()
    it("reads, at each position, the field request.lua names for it", function()
        local c = test.client(APP, { remote_addr = "10.1.2.3" })
        finally(function() c:close() end)
        -- every field a value no other field has
        local r = c:request("PATCH", "/fields/7?q=1", { version = "HTTP/1.0", conn_id = 4242 })
        assert.are.equal(200, r.status, r.body)
        local sender = r.frames[1]:match("^(%S+) ")
        local expected = {
            query = "q=1", uri = "/fields/7?q=1", version = "HTTP/1.0", remote_addr = "10.1.2.3",
            conn_id = 4242, sender = sender, method = "PATCH", path = "/fields/7",
        }
        local got = cjson.decode(r.body)
        local names = {}
        for i, field in ipairs(got.read) do
            names[#names + 1] = field.name
            assert.are.equal(expected[field.name], field.value,
                ("core.req.field(handle, %d) should be %s"):format(i, field.name))
        end
        table.sort(names)
        assert.are.same({ "conn_id", "method", "path", "query", "remote_addr", "sender", "uri", "version" }, names)
        assert.matches("no such field", got.past_the_end)
    end)
end)
