-- lubeck.abort and the default error pages.
local core = require "lubeck.core"

local setmetatable, getmetatable, type, error, tostring = setmetatable, getmetatable, type, error, tostring
local gsub, format, lower = string.gsub, string.format, string.lower

local _M = {}

-- The error object lubeck.abort raises; the pipeline answers it instead of
-- treating it as a failure.
local Abort = {}
Abort.__index = Abort
Abort.__tostring = function(self) return format("lubeck.abort(%d)", self.status) end
_M.Abort = Abort

function _M.abort(status, body)
    if type(status) ~= "number" or status < 100 or status > 999 then
        error("lubeck.abort: status must be an HTTP status code, got " .. tostring(status), 2)
    end
    error(setmetatable({ status = status, body = body }, Abort), 0)
end

function _M.is_abort(err)
    return getmetatable(err) == Abort
end

-- The message handler for xpcall around app code: an abort passes through as
-- it is, any other error becomes its message with a traceback.
function _M.traceback(err)
    if getmetatable(err) == Abort then return err end
    return debug.traceback(tostring(err), 2)
end

local escapes = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

function _M.escape_html(s)
    return (gsub(tostring(s), "[&<>\"']", escapes))
end

-- "<!DOCTYPE html>…404 Not Found…", with the traceback only when debugging.
function _M.html_page(status, detail)
    local title = format("%d %s", status, core.reason(status))
    local extra = detail and ("<pre>" .. _M.escape_html(detail) .. "</pre>") or ""
    return format("<!DOCTYPE html>\n<html><head><title>%s</title></head><body><h1>%s</h1>%s</body></html>\n",
        title, title, extra)
end

-- {"status":404,"error":"not found"}
function _M.json_body(status, detail)
    local body = { status = status, error = lower(core.reason(status)) }
    if detail then body.traceback = detail end
    return body
end

return _M
