-- Brubeck's demos (github.com/j2labs/brubeck, demos/) as one lubeck app. Each
-- section names the demo it follows; README.md lists the routes and what
-- differs from Brubeck.
--
--   COOKIE_SECRET=$(head -c 32 /dev/urandom | base64) build/lubeck serve apps/demos
local lubeck = require "lubeck"
local auth = require "lubeck.auth"
local csrf = require "lubeck.csrf"

local secret = os.getenv("COOKIE_SECRET")
if not secret or secret == "" then
    error("apps/demos needs COOKIE_SECRET in the environment (it signs the login session), e.g.\n"
        .. "  COOKIE_SECRET=$(head -c 32 /dev/urandom | base64) lubeck serve apps/demos", 0)
end

local app = lubeck.app{
    name = "demos",
    cookie_secret = secret,
    login_url = "/login",
}

-- The demos' one user (Brubeck's User.create_user('jd', 'foo')), hashed with
-- argon2id once when the app loads.
local demo_user = { username = "jd", password_hash = auth.hash_password("foo") }

local function check_user(username, password)
    if username ~= demo_user.username then return nil end
    if not auth.verify_password(password or "", demo_user.password_hash) then return nil end
    return demo_user
end

app:get("/", function(req) return app:render("index.html", {}) end)

-- demo_minimal: a class with get -------------------------------------------------------

local Minimal = lubeck.Handler:extend()
function Minimal:get()
    return "Take five, " .. self:get_argument("name", "dude") .. "!"
end
app:route("^/brubeck$", Minimal)

-- demo_noclasses: a function route -------------------------------------------------------

app:get("^/noclasses/brubeck$", function(req)
    return "Take five, " .. req:arg("name", "dude") .. "!"
end)

-- demo_urlargs: positional and named captures -------------------------------------------

local Index = lubeck.Handler:extend()
function Index:get() return "Take five!" end
app:route("^/urlargs$", Index)

local Name = lubeck.Handler:extend()
function Name:get(name) return "Take five, " .. name .. "!" end
app:route("^/class/(\\w+)$", Name)

app:route("^/fun/(?<name>\\w+)$", function(req, name)
    return 200, "Take five, " .. name .. "!"
end)

app:get("^/deco/(?<name>\\w+)$", function(req)
    return "Take five, " .. req.params.name .. "!"
end)

-- demo_jinja2 / demo_mustache / demo_mako: a template in a layout ------------------------

local Templated = lubeck.Handler:extend()
function Templated:get()
    return self:render("success.html", { name = self:get_argument("name", "dude") })
end
app:route("^/templates$", Templated)

-- demo_longpolling: a page that polls /feed, which answers after 2 s -------------------------

local Poll = lubeck.Handler:extend()
function Poll:get()
    return self:render("longpolling.html", { name = self:get_argument("name", "dude") })
end
app:route("^/longpolling$", Poll)

local Feed = lubeck.Handler:extend()
function Feed:get()
    lubeck.sleep(2)   -- only this request waits: the host serves others meanwhile
    return "The current time is: " .. os.date("!%Y-%m-%d %H:%M:%S UTC")
end
app:route("^/feed$", Feed)

-- demo_auth: credentials in the request; POST only ------------------------------------------

local AuthDemo = lubeck.Handler:extend(auth.UserMixin)
AuthDemo.login_url = false       -- no user: 401, not a redirect to the login page
function AuthDemo:get_current_user()
    return check_user(self:get_argument("username"), self:get_argument("password"))
end
AuthDemo.post = auth.authenticated(function(self)
    return self:current_user().username .. " logged in successfully!"
end)
app:route("^/auth$", AuthDemo)

-- demo_login: a login form, a session, a landing page that needs a user ----------------------

local Session = lubeck.Handler:extend(auth.UserMixin, csrf.CSRFMixin)
function Session:get_current_user()
    local name = self.session.user
    return name and { username = name } or nil
end

local Landing = Session:extend()
Landing.get = auth.authenticated(function(self)
    return self:render("landing.html", { user = self:current_user() })
end)
app:route("^/landing$", Landing)

local Login = Session:extend()
function Login:get()
    return self:render("login.html", { next = self:get_argument("next", "/landing") })
end
function Login:post()
    local next_url = self:get_argument("next", "/landing")
    if next_url:sub(1, 1) ~= "/" or next_url:sub(1, 2) == "//" then next_url = "/landing" end
    local user = check_user(self:get_argument("username"), self:get_argument("password"))
    if not user then
        return self:render("login.html", { next = next_url, failed = true }, 401)
    end
    require("lubeck.session").regenerate(self)
    self.session.user = user.username
    return self:redirect(next_url)
end
app:route("^/login$", Login)

local Logout = Session:extend()
function Logout:get()
    self.session.user = nil
    return self:redirect("/login")
end
app:route("^/logout$", Logout)

-- demo_multipart: an upload form; the file is saved ------------------------------------------

-- Uploads go outside the app folder: what an app writes is not its source (and
-- `serve --reload` watches only what the app loads).
local UPLOADS = os.getenv("DEMOS_UPLOAD_DIR")
if not UPLOADS or UPLOADS == "" then
    UPLOADS = (os.getenv("TMPDIR") or "/tmp") .. "/lubeck-demos-uploads"
    os.execute("mkdir -p '" .. UPLOADS:gsub("'", "'\\''") .. "'")
end

local Upload = lubeck.Handler:extend()
function Upload:get() return self:render("upload.html", {}) end
function Upload:post()
    local file = self.req.files and self.req.files.data
    if not file then
        return self:render("upload.html", { problem = "Choose a file to upload." }, 400)
    end
    local name = (file.filename or "upload"):match("[^/\\]*$"):gsub("[^%w%._%-]", "_")
    if name == "" or name:sub(1, 1) == "." then name = "upload" .. name end
    local body = file.body
    if body == nil and file.path then        -- a Mongrel2 async upload: the temp file
        local f = io.open(file.path, "rb")
        if f then body = f:read("*a"); f:close() end
    end
    local out, err = io.open(UPLOADS .. "/" .. name, "wb")
    if not out then error("cannot save the upload: " .. tostring(err)) end
    out:write(body or "")
    out:close()
    return self:render("upload.html", { saved = name, size = #(body or ""),
        content_type = file.content_type }, 201)
end
app:route("^/add_file$", Upload)

-- demo_autoapi: a todo resource (app:resource and lubeck.model) ---------------------------------

local has_model, model = pcall(require, "lubeck.model")
if has_model and type(app.resource) == "function" then
    local Todo = model.define("Todo", {
        title = model.string{ required = true, min = 1, max = 200 },
        completed = model.boolean{ default = false },
        archived = model.boolean{ default = false },
    })
    app:resource("/todos", Todo)
end

-- Where Brubeck went quiet: a failing handler is answered 500 (with the
-- traceback in the log), an unknown path 404.
app:get("^/fail$", function(req)
    error("this handler fails on purpose")
end)

return app
