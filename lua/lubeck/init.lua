-- lubeck: Lua web handlers behind Mongrel2. This module is what apps require:
--   local lubeck = require "lubeck"
--   local app = lubeck.app{}
--   app:get("/", function(req) return "Hello" end)
--   return app
local core = require "lubeck.core"
local App = require "lubeck.app"
local handler = require "lubeck.handler"
local errors = require "lubeck.errors"
local channel = require "lubeck.channel"
local websocket = require "lubeck.websocket"
local shared = require "lubeck.shared"

local _M = {
    _VERSION = core.version,
    app = App.new,
    Handler = handler.Handler,
    JSONHandler = handler.JSONHandler,
    WebSocketHandler = websocket.WebSocketHandler,
    websocket = websocket,
    abort = errors.abort,
    sleep = core.sleep,
    now = core.now,
    spawn = core.spawn,
    tcp = core.tcp,
    channel = channel.new,
    shared = shared.new,
    stats = core.stats,
}

return _M
