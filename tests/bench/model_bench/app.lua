-- Validation throughput: a 10-field model checked in C (lubeck.model) against
-- the same checks written in plain Lua, in one run. Run it with:
--   LUBECK_MODEL_BENCH=1 build/lubeck check tests/bench/model_bench
-- (LUBECK_MODEL_BENCH_N sets the validations per side, default 200000.)
local lubeck = require "lubeck"
local model = require "lubeck.model"

local app = lubeck.app{ name = "model_bench" }
app:get("/", function() return "model bench: run with LUBECK_MODEL_BENCH=1 lubeck check" end)
if not os.getenv("LUBECK_MODEL_BENCH") then return app end

local N = tonumber(os.getenv("LUBECK_MODEL_BENCH_N") or "") or 200000

local Todo = model.define("Todo", {
    title = model.string{ required = true, min = 1, max = 200 },
    done = model.boolean{ default = false },
    order = model.integer{ min = 0, max = 1000 },
    priority = model.number{ min = 0, max = 10 },
    color = model.string{ choices = { "red", "green", "blue" } },
    owner = model.email{},
    site = model.url{},
    id = model.uuid{},
    due = model.datetime{},
    tags = model.list(model.string{ max = 20 }, { max = 10 }),
})

local input = {
    title = "Write the benchmark", done = true, order = 7, priority = 2.5, color = "green",
    owner = "someone.else@example.com", site = "https://example.com/a/b?c=d",
    id = "123e4567-e89b-12d3-a456-426614174000", due = "2030-01-31T12:00:00Z",
    tags = { "bench", "lua", "c" }, unknown = "dropped",
}

-- The same checks in plain Lua ------------------------------------------------------
local type, floor, byte, find, sub, tonumber = type, math.floor, string.byte, string.find, string.sub, tonumber

local function utf8_len(s)     -- strict enough for the bench inputs: counts and refuses bad leads
    local n, i, len = 0, 1, #s
    while i <= len do
        local c = byte(s, i)
        local k = c < 0x80 and 1 or c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC2 and 2 or nil
        if not k or i + k - 1 > len then return nil end
        for j = i + 1, i + k - 1 do
            local d = byte(s, j)
            if d < 0x80 or d > 0xBF then return nil end
        end
        i = i + k
        n = n + 1
    end
    return n
end

local function str(v, min, max)
    if type(v) ~= "string" then return "must be a string" end
    local n = utf8_len(v)
    if not n then return "is not valid UTF-8" end
    if min and n < min then return "too short" end
    if max and n > max then return "too long" end
end

local function email(v)
    local e = str(v); if e then return e end
    local at = find(v, "@[^@]*$")
    if not at or at == 1 or at > 65 or #v > 254 then return "bad email" end
    local localpart, domain = sub(v, 1, at - 1), sub(v, at + 1)
    if find(localpart, "^%.") or find(localpart, "%.$") or find(localpart, "%.%.") or
        find(localpart, "[^%w!#$%%&'*+/=?^_`{|}~.-]") then return "bad email" end
    for label in (domain .. "."):gmatch("([^.]*)%.") do
        if #label == 0 or #label > 63 or find(label, "^%-") or find(label, "%-$") or find(label, "[^%w-]") then
            return "bad email"
        end
    end
end

local function url(v)
    local e = str(v); if e then return e end
    local rest = v:match("^[Hh][Tt][Tt][Pp][Ss]?://(.*)$")
    if not rest then return "bad url" end
    local host = rest:match("^([^/?#]*)")
    if host == "" or find(rest, "[^%w%-._~:/?#%[%]@!$&'()*+,;=%%]") then return "bad url" end
end

local function uuid(v)
    if type(v) ~= "string" or not find(v, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
        return "bad uuid"
    end
end

local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function datetime(v)
    if type(v) ~= "string" then return "bad datetime" end
    local y, mo, d, h, mi, s, rest = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$")
    if not y then return "bad datetime" end
    y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
    if mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or s > 60 then return "bad datetime" end
    local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
    if d > MDAYS[mo] + ((mo == 2 and leap) and 1 or 0) then return "bad datetime" end
    rest = rest:gsub("^%.%d+", "")
    if not (rest == "Z" or rest == "z" or rest:match("^[+-][01]%d:[0-5]%d$") or rest:match("^[+-]2[0-3]:[0-5]%d$")) then
        return "bad datetime"
    end
end

local function number(v, min, max, integer)
    if type(v) ~= "number" or v ~= v or v == 1 / 0 or v == -1 / 0 then return "must be a number" end
    if integer and (v ~= floor(v) or v > 2 ^ 53 or v < -2 ^ 53) then return "must be an integer" end
    if min and v < min then return "too small" end
    if max and v > max then return "too big" end
end

local COLORS = { red = true, green = true, blue = true }

local function lua_validate(t)
    if type(t) ~= "table" then return nil, { [""] = "must be an object" } end
    local out, errs = {}, nil
    local function check(name, e) if e then errs = errs or {}; errs[name] = e end end
    local v = t.title
    if v == nil then check("title", "is required") else check("title", str(v, 1, 200)); out.title = v end
    v = t.done
    if v == nil then out.done = false elseif type(v) ~= "boolean" then check("done", "must be true or false") else out.done = v end
    v = t.order; if v ~= nil then check("order", number(v, 0, 1000, true)); out.order = v end
    v = t.priority; if v ~= nil then check("priority", number(v, 0, 10)); out.priority = v end
    v = t.color; if v ~= nil then check("color", str(v) or (not COLORS[v] and "must be one of")); out.color = v end
    v = t.owner; if v ~= nil then check("owner", email(v)); out.owner = v end
    v = t.site; if v ~= nil then check("site", url(v)); out.site = v end
    v = t.id; if v ~= nil then check("id", uuid(v)); out.id = v end
    v = t.due; if v ~= nil then check("due", datetime(v)); out.due = v end
    v = t.tags
    if v ~= nil then
        if type(v) ~= "table" then check("tags", "must be a list")
        else
            local n = #v
            if n > 10 then check("tags", "too many") end
            local l = {}
            for i = 1, n do check("tags." .. i, str(v[i], nil, 20)); l[i] = v[i] end
            out.tags = l
        end
    end
    if errs then return nil, errs end
    return out
end

-- Both must agree before they are timed.
assert(Todo:validate(input) and lua_validate(input), "the bench input must be valid for both")
local bad = { title = "", order = -1, owner = "x@", tags = { 1 } }
assert(not Todo:validate(bad) and not lua_validate(bad), "the bad input must fail both")

local clock = os.clock
local function run(name, fn)
    for _ = 1, math.floor(N / 10) do fn(input) end     -- warm up (JIT)
    local t0 = clock()
    for _ = 1, N do fn(input) end
    local dt = clock() - t0
    return N / dt, dt
end

local c_rate, c_dt = run("C", function(v) return Todo:validate(v) end)
local lua_rate, lua_dt = run("Lua", lua_validate)
io.stdout:write(string.format(
    "model_bench: %d validations of a 10-field model each side\n" ..
    "  C (lubeck.model): %10.0f validations/s (%.3fs)\n" ..
    "  plain Lua:        %10.0f validations/s (%.3fs)\n" ..
    "  ratio C/Lua: %.2f\n", N, c_rate, c_dt, lua_rate, lua_dt, c_rate / lua_rate))
io.stdout:flush()
return app
