-- JSON for lubeck's own use (responses, channels): lua-cjson, but with every
-- number exact and "/" unescaped. Debian's lua-cjson 2.1.0 writes at most 14 significant digits,
-- so 123456789012345 would go out as 1.2345678901234e+14. A number that 14
-- digits do not carry goes into the text through a placeholder, replaced by
-- all of its digits; everything else is plain cjson.encode.
local cjson = require("cjson").new()

local type, pairs, tonumber, error = type, pairs, tonumber, error
local format, gsub, find, floor, huge = string.format, string.gsub, string.find, math.floor, math.huge
local cjson_encode = cjson.encode

-- lua-cjson writes "/" as "\/": legal JSON, but "\/hello" surprises anyone
-- reading it. Every "/" it writes is escaped (so a "\/" can only be one), and
-- an escaped backslash before a slash reads "\\\/", which becomes "\\/".
local function encode(value)
    local text = cjson_encode(value)
    if not find(text, "\\/", 1, true) then return text end
    return (gsub(text, "\\/", "/"))
end

cjson.encode_sparse_array(true)

local _M = { null = cjson.null, decode = cjson.decode }

local function inexact(v, depth)
    if type(v) == "number" then
        return v == v and v ~= huge and v ~= -huge and tonumber(format("%.14g", v)) ~= v
    end
    if type(v) == "table" and depth < 100 then
        for _, x in pairs(v) do
            if inexact(x, depth + 1) then return true end
        end
    end
    return false
end

function _M.encode(value)
    if not inexact(value, 0) then return encode(value) end
    local digits = {}
    local function swap(v, depth)
        if type(v) == "table" then
            if depth > 1000 then error("nested too deep (a cycle?)") end
            local copy = {}
            for k, x in pairs(v) do copy[k] = swap(x, depth + 1) end
            return copy
        end
        if type(v) ~= "number" or not inexact(v, 0) then return v end
        digits[#digits + 1] = (v == floor(v) and v > -2^63 and v < 2^63) and format("%d", v)
            or format("%.17g", v)
        return "\0lubeck#" .. #digits .. "\0"
    end
    return (gsub(encode(swap(value, 0)), '"\\u0000lubeck#(%d+)\\u0000"', function(i)
        return digits[tonumber(i)]
    end))
end

return _M
