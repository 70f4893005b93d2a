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

-- One look for every error page: the status as the heading, a sentence for a
-- person, and (only when debugging) the traceback below.
local PAGE = [[
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<style>
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; background: #f6f6f4; }
main { max-width: 44rem; margin: 12vh auto 2rem; padding: 0 1.25rem; }
h1 { margin: 0 0 .25rem; font-size: 1.75rem; font-weight: 600; }
p { margin: 0 0 1.5rem; color: #555; }
a { color: #0b5fad; }
pre { margin: 0; padding: 1rem; overflow: auto; font: 13px/1.45 ui-monospace, monospace;
      background: #fff; border: 1px solid #ddd; border-left: 4px solid #c0392b; border-radius: 4px; }
</style></head>
<body><main><h1>%s</h1><p>%s</p>%s</main></body></html>
]]

local function sentence(status)
    if status == 404 then return 'There is nothing at this address. <a href="/">Start again from the home page</a>.' end
    if status == 405 then return "This address does not take that kind of request." end
    if status == 503 or status == 504 then return "The server is busy or slow right now. Please try again in a moment." end
    if status >= 500 then return "Something went wrong on our side. It has been logged." end
    return "The request could not be served as sent."
end

-- "<!DOCTYPE html>…<h1>404 Not Found</h1>…", with the traceback only when debugging.
function _M.html_page(status, detail)
    local title = format("%d %s", status, core.reason(status))
    local extra = detail and ("<pre>" .. _M.escape_html(detail) .. "</pre>") or ""
    return format(PAGE, title, title, sentence(status), extra)
end

-- {"status":404,"error":"not found"}
function _M.json_body(status, detail)
    local body = { status = status, error = lower(core.reason(status)) }
    if detail then body.traceback = detail end
    return body
end

return _M
