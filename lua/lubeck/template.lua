-- Templates in etlua syntax, compiled once to Lua functions:
--   <%= expr %>   the value, HTML-escaped (nil renders as nothing)
--   <%- expr %>   the value as is
--   <% code %>    Lua code (loops, ifs, locals); "-%>" also eats the newline after the tag
--   <%- render("row.html", { row = row }) %>      includes another template
--   layout = "layout.html" in the context (or set by the template's code) wraps
--   the output: the layout prints it with <%- content %>.
-- Names resolve inside one folder only (no "..", no absolute paths, no NUL).
-- A template is recompiled when its file changes (mtime, size or inode).
-- Errors name the template and its line: "page.html:3: attempt to index ...".
--
-- The compile step is pluggable: an engine built with { compile = fn } uses
-- fn(source, name) → render(env) → string (or nil, err); env holds the context's
-- fields, and falls back to the helpers (render, escape, csrf_field, ...) and _G.
--
-- Used without the host:  local t = require "lubeck.template"
--   local engine = t.new{ dir = "templates" };  engine:render("page.html", ctx)
-- or as etlua is used: t.render(source, env) → string | nil, err, and
--   t.compile(source) → fn | nil, err, fn(env [, buffer, n]) → string (names
--   missing from env come from _G; a buffer given gets the output appended).
local setmetatable, getmetatable, setfenv, loadstring, pairs, type, tostring, error, pcall, rawget =
    setmetatable, getmetatable, setfenv, loadstring, pairs, type, tostring, error, pcall, rawget
local find, sub, gsub, format, byte, gmatch, match, rep = string.find, string.sub, string.gsub,
    string.format, string.byte, string.gmatch, string.match, string.rep
local _G = _G
local concat, open = table.concat, io.open

local _M = { _VERSION = "0.1" }

-- Escaping -----------------------------------------------------------------------

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

local function escape(v)
    if v == nil then return "" end
    if type(v) ~= "string" then v = tostring(v) end
    if find(v, "[&<>\"']") then return (gsub(v, "[&<>\"']", ESCAPES)) end
    return v
end
_M.escape = escape

local function raw(v)
    if v == nil then return "" end
    if type(v) ~= "string" then return tostring(v) end
    return v
end

-- The compiler -------------------------------------------------------------------
-- The generated Lua keeps every template line on the same line number, so
-- Lua's own messages ("name:LINE: ...") point into the template. A block that
-- holds "--" (a comment would swallow the code after it) is closed with a real
-- newline; the next newline of the template text is then written as "\n" to
-- pay that line back.

local function line_of(source, pos)
    local n = 1
    for _ in gmatch(sub(source, 1, pos - 1), "\n") do n = n + 1 end
    return n
end

-- Where the tag whose code starts at pos closes: the "%>" that is not inside
-- a Lua string or long string ("<%= '%>' %>" prints %>); a line comment ends
-- at the end of its line or at the tag's close, whichever comes first.
local function find_close(source, pos)
    local len, quote = #source, nil
    while pos <= len do
        local c = byte(source, pos)
        if quote then
            if c == 92 then pos = pos + 1                      -- \x: x is escaped
            elseif c == quote or c == 10 then quote = nil end  -- (a newline ends a broken one)
        elseif c == 39 or c == 34 then
            quote = c
        elseif c == 91 or (c == 45 and byte(source, pos + 1) == 45) then   -- [ or --
            local at = c == 45 and pos + 2 or pos
            local opener = match(source, "^%[=*%[", at)
            if opener then                                     -- a long string or comment
                local _, e = find(source, "]" .. rep("=", #opener - 2) .. "]", at + #opener, true)
                if not e then return nil end
                pos = e
            elseif c == 45 then                                -- a line comment
                local cs, ce = find(source, "%>", pos, true)
                local nl = find(source, "\n", pos, true)
                if cs and (not nl or cs < nl) then return cs, ce end
                if not nl then return nil end
                pos = nl
            end
        elseif c == 37 and byte(source, pos + 1) == 62 then   -- %>
            return pos, pos + 1
        end
        pos = pos + 1
    end
end

-- The Lua source of a template: a chunk returning function(_e, _r, _c [, _b, _n])
-- → string, appending to _b after its _n-th item when given.
function _M.to_lua(source, name)
    name = name or "template"
    local out, n = { "return function(_e, _r, _c, _b, _n) _b, _n = _b or {}, _n or 0 " }, 1
    local owed = 0          -- synthetic newlines not yet paid back
    local function emit(s) n = n + 1; out[n] = s end
    local function text(t)
        if t == "" then return end
        local q = format("%q", t)
        if owed > 0 then
            local paid
            q, paid = gsub(q, "\\\n", "\\n", owed)
            owed = owed - paid
        end
        emit("_n=_n+1 _b[_n]=" .. q .. " ")
    end
    local pos, len = 1, #source
    while pos <= len do
        local s, e, kind = find(source, "<%%([=-]?)", pos)
        if not s then
            text(sub(source, pos))
            break
        end
        text(sub(source, pos, s - 1))
        local cs, ce = find_close(source, e + 1)
        if not cs then
            error(format("%s:%d: unclosed <%%%s tag", name, line_of(source, s), kind), 0)
        end
        local body_end, trim = cs - 1, false
        if byte(source, cs - 1) == 45 and cs - 1 > e then   -- "-%>"
            body_end, trim = cs - 2, true
        end
        local body = sub(source, e + 1, body_end)
        local commented = find(body, "--", 1, true) ~= nil
        local eaten = trim and find(source, "^\r?\n", ce + 1)
        if kind == "" then
            emit(body .. (commented and "\n" or " "))
            -- the newline that closed a comment pays for an eaten one, or is owed
            if commented and not eaten then owed = owed + 1 end
        else
            emit("_n=_n+1 _b[_n]=" .. (kind == "=" and "_e(" or "_r(") .. body
                .. (commented and "\n) " or ") "))
            if commented then owed = owed + 1 end
        end
        pos = ce + 1
        if eaten then
            pos = pos + (byte(source, pos) == 13 and 2 or 1)
            if not (kind == "" and commented) then emit("\n") end
        end
    end
    emit(" return _c(_b, \"\", 1, _n) end")
    return concat(out, "", 1, n)
end

-- An environment for a bare table: its names, then _G's (as etlua reads them).
local function with_globals(env)
    if env == nil then env = {} end
    if getmetatable(env) ~= nil then return env end
    return setmetatable({}, { __index = function(_, k)
        local v = env[k]
        if v == nil then v = _G[k] end
        return v
    end })
end

-- compile(source [, name]) → render(env [, buffer, n]) → string, or nil and
-- "name:LINE: message" for a syntax error.
function _M.compile(source, name)
    if type(source) ~= "string" then error("compile: the template source must be a string", 2) end
    name = name or "template"
    local ok, code = pcall(_M.to_lua, source, name)
    if not ok then return nil, code end
    local chunk, err = loadstring(code, "=" .. name)
    if not chunk then return nil, err end
    return function(env, buffer, n)
        -- a closure per render, each with its own environment: renders of
        -- the same template may run at once (in several coroutines, or nested)
        local fn = chunk()
        setfenv(fn, with_globals(env))
        return fn(escape, raw, concat, buffer, buffer and (n or #buffer) or nil)
    end
end

-- render(source, env) → string | nil, err: etlua's one-shot form.
function _M.render(source, ...)
    local fn, err = _M.compile(source)
    if not fn then return nil, err end
    return fn(...)
end

-- etlua's Parser, for code written against it: compile_to_lua(source) →
-- Lua code | nil, err; load(code [, name]) → chunk | nil, err; run(chunk, env,
-- buffer, n) → string (appending to buffer after its n-th item). Parser() or
-- Parser.new() makes one; it holds no state.
local Parser = setmetatable({}, { __call = function(cls) return cls.new() end })
Parser.__index = Parser

function Parser.new()
    return setmetatable({}, Parser)
end

function Parser:compile_to_lua(source, name)
    local ok, code = pcall(_M.to_lua, source, name or "template")
    if not ok then return nil, code end
    return code
end

function Parser:load(code, name)
    return loadstring(code, "=" .. (name or "template"))
end

function Parser:run(chunk, env, buffer, n)
    local fn = chunk()
    setfenv(fn, with_globals(env))
    return fn(escape, raw, concat, buffer, buffer and (n or #buffer) or nil)
end

-- Parser.in_string(state, start) → true when a Lua string or long string that
-- opens in state.str at or after start is still open at its end.
function Parser.in_string(state, start)
    local str, pos, quote = state.str, start or 1, nil
    local len = #str
    while pos <= len do
        local c = byte(str, pos)
        if quote then
            if c == 92 then pos = pos + 1 elseif c == quote then quote = nil end
        elseif c == 39 or c == 34 then
            quote = c
        elseif c == 91 then
            local opener = match(str, "^%[=*%[", pos)
            if opener then
                local _, e = find(str, "]" .. rep("=", #opener - 2) .. "]", pos + #opener, true)
                if not e then return true end
                pos = e
            end
        end
        pos = pos + 1
    end
    return quote ~= nil
end
_M.Parser = Parser

-- File signatures (for recompiling on change) --------------------------------------

local file_sig
do
    local ok, ffi = pcall(require, "ffi")
    if ok and ffi.os == "Linux" and (ffi.arch == "x64" or ffi.arch == "arm64") then
        -- struct stat on 64-bit Linux (x86_64 and the generic layout of arm64
        -- agree on these): st_ino at 8, st_size at 48, st_mtim at 88.
        pcall(ffi.cdef, "int stat(const char *path, void *buf);")
        local has = pcall(function() return ffi.C.stat end)
        if has then
            local buf = ffi.new("int64_t[32]")
            local C, tonumber = ffi.C, tonumber
            file_sig = function(path)
                if C.stat(path, buf) ~= 0 then return nil end
                return tonumber(buf[11]), tonumber(buf[12]), tonumber(buf[6]), tonumber(buf[1])
            end
        end
    end
end

local function read_file(path)
    local f = open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

-- Without stat (another platform): the source itself is the signature.
if not file_sig then
    file_sig = function(path) return read_file(path), 0, 0, 0 end
end

-- Engines ----------------------------------------------------------------------

local Engine = {}
Engine.__index = Engine

local MAX_DEPTH = 32

-- new{ dir = "templates", compile = fn } → an engine rendering files of dir.
function _M.new(opts)
    opts = opts or {}
    local compile = opts.compile or _M.compile
    if type(compile) ~= "function" then error("template engine: compile must be a function", 2) end
    return setmetatable({ dir = opts.dir or "templates", compile = compile, cache = {} }, Engine)
end

-- Refuses names that could leave the folder.
local function check_name(name)
    if type(name) ~= "string" or name == "" then
        return nil, "template name must be a non-empty string"
    end
    if find(name, "%z") then return nil, "template name holds NUL" end
    if byte(name) == 47 or byte(name) == 92 then
        return nil, format("template name %q is absolute", name)
    end
    for seg in gmatch(name, "[^/\\]+") do
        if seg == ".." then return nil, format("template name %q leaves the template folder", name) end
    end
    return true
end

-- The render function of a template, compiled on first use and again after its
-- file changed. Raises on a refused name, a missing file or a syntax error.
function Engine:load(name)
    local ok, err = check_name(name)
    if not ok then error(err, 0) end
    local path = self.dir .. "/" .. name
    local a, b, c, d = file_sig(path)
    if a == nil then error(format("template %q not found in %s", name, self.dir), 0) end
    local entry = self.cache[name]
    if entry and entry[1] == a and entry[2] == b and entry[3] == c and entry[4] == d then
        return entry.fn
    end
    local source = read_file(path)
    if not source then error(format("template %q cannot be read", name), 0) end
    local fn, cerr = self.compile(source, name)
    if not fn then error(cerr or (name .. ": compile failed"), 0) end
    self.cache[name] = { a, b, c, d, fn = fn }
    return fn
end

-- Every template name under the folder compiled once (for `lubeck check`):
-- returns true, or nil and the first error.
function Engine:check(names)
    for _, name in pairs(names) do
        local ok, err = pcall(self.load, self, name)
        if not ok then return nil, err end
    end
    return true
end

local helpers_mt = { __index = _G }

-- An environment: the fields of ctx on top of helpers (then _G).
local function new_env(ctx, helpers)
    local env = setmetatable({}, helpers)
    if ctx then for k, v in pairs(ctx) do env[k] = v end end
    return env
end

local function run(self, name, env)
    local fn = self:load(name)
    local out, err = fn(env)
    if out == nil then error(err or (name .. ": the template engine returned nothing"), 0) end
    return out
end

-- render(name, ctx [, helpers]) → string. helpers: extra names visible to the
-- template (csrf_field, current_user, ...); render and escape are always there.
function Engine:render(name, ctx, helpers)
    if ctx ~= nil and type(ctx) ~= "table" then error("render: the context must be a table", 2) end
    local h = setmetatable({}, helpers_mt)
    if helpers then for k, v in pairs(helpers) do h[k] = v end end
    local mt = { __index = h }
    local depth = 0
    h.escape = escape
    h.render = function(other, octx)
        if depth >= MAX_DEPTH then error("render: includes nested deeper than " .. MAX_DEPTH, 2) end
        depth = depth + 1
        local out = run(self, other, new_env(octx or ctx, mt))
        depth = depth - 1
        return out
    end
    local env = new_env(ctx, mt)
    local out = run(self, name, env)
    -- layouts, innermost first; a layout may name a layout of its own
    for _ = 1, MAX_DEPTH do
        local layout = rawget(env, "layout")
        if layout == nil or layout == false then return out end
        local outer = new_env(env, mt)
        outer.layout, outer.content = nil, out
        out = run(self, layout, outer)
        env = outer
    end
    error("render: layouts nested deeper than " .. MAX_DEPTH, 2)
end

-- The engine of an app: app.template_dir (relative to app.dir) and
-- app.template_engine = { compile = fn } when set.
local engines = setmetatable({}, { __mode = "k" })

function _M.for_app(app)
    local engine = engines[app]
    if engine then return engine end
    local dir = app.template_dir or "templates"
    if byte(dir) ~= 47 then dir = (app.dir or ".") .. "/" .. dir end
    local custom = app.template_engine
    engine = _M.new{ dir = dir, compile = custom and custom.compile }
    engines[app] = engine
    return engine
end

return _M
