-- Loads an app folder into a fresh Lua state for the host: runs app.lua, checks
-- it returned an app, compiles its routes. Every failure is an error whose
-- message starts with file:line.
require "lubeck.coroutine"   -- handlers' own coroutines may wait on the host
local App = require "lubeck.app"
local pipeline = require "lubeck.pipeline"

local _M = {}

-- Every file of the app's template folder compiled once: `lubeck check`
-- reports a template's syntax error as name:LINE before anything is served.
local function check_templates(app)
    local engine = require("lubeck.template").for_app(app)
    local dir = engine.dir
    local quoted = "'" .. dir:gsub("'", "'\\''") .. "'"
    local list = io.popen("find " .. quoted .. " -type f ! -name '.*' 2>/dev/null")
    if not list then return end
    local names = {}
    for path in list:lines() do names[#names + 1] = path:sub(#dir + 2) end
    list:close()
    table.sort(names)
    local ok, err = engine:check(names)
    if not ok then error(err, 0) end
end

function _M.load(app_dir, debug_mode, checking)
    local path = app_dir .. "/app.lua"
    local chunk, err = loadfile(path)
    if not chunk then
        if not io.open(path) then error(app_dir .. " is not an app folder (no app.lua)", 0) end
        error(err, 0)
    end
    local app = chunk()   -- an error here reaches the host with its traceback
    if not App.is_app(app) then
        error(path .. ": must end with 'return app', where app = lubeck.app{...} (it returned "
            .. type(app) .. ")", 0)
    end
    app.dir = app_dir
    if debug_mode then app.debug = true end
    app:_compile()
    for _, warning in ipairs(app:_shadowed()) do io.stderr:write(warning, "\n") end
    if checking then check_templates(app) end
    return pipeline.entry(app), pipeline.on_timeout(app), app.request_timeout
end

return _M
