-- Loads an app folder into a fresh Lua state for the host: runs app.lua, checks
-- it returned an app, compiles its routes. Every failure is an error whose
-- message starts with file:line.
local App = require "lubeck.app"
local pipeline = require "lubeck.pipeline"

local _M = {}

function _M.load(app_dir, debug_mode)
    local path = app_dir .. "/app.lua"
    local chunk, err = loadfile(path)
    if not chunk then error(err, 0) end
    local app = chunk()   -- an error here reaches the host with its traceback
    if not App.is_app(app) then
        error(path .. ": must end with 'return app', where app = lubeck.app{...} (it returned "
            .. type(app) .. ")", 0)
    end
    app.dir = app_dir
    if debug_mode then app.debug = true end
    app:_compile()
    return pipeline.entry(app), pipeline.on_timeout(app), app.request_timeout
end

return _M
