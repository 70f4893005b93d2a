-- The end-to-end test app for docs/mixins.md (templates, secure cookies, sessions,
-- auth, CSRF). tests/e2e/test_mixins.py drives it.
local lubeck = require "lubeck"
local auth = require "lubeck.auth"
local csrf = require "lubeck.csrf"
local template = require "lubeck.template"

local app = lubeck.app{
    name = "mixins",
    cookie_secret = "test-secret-0123456789abcdef-not-for-production",
    login_url = "/login",
}

-- One argon2id hash at load time; the tests log in with "hunter2".
local USERS = { ann = auth.hash_password("hunter2") }

local Page = lubeck.Handler:extend(auth.UserMixin)
function Page:get_current_user() return self.session.user end

-- Templates ---------------------------------------------------------------------

local Escape = Page:extend()
function Escape:get() return self:render("escape.html", { name = self:get_argument("name", "") }) end
app:get("/tpl/escape", Escape)

local Layout = Page:extend()
function Layout:get()
    self:render("page.html", { title = "Rows & more", rows = { "one", "<two>", "three" },
        layout = "layout.html" }, 201)
end
app:get("/tpl/layout", Layout)

-- renders the template the query names; a refused name or a template error
-- answers 400 with the message
local Named = Page:extend()
function Named:get()
    local ok, err = pcall(self.render, self, self:get_argument("name"), { x = 1 })
    if not ok then return 400, "refused: " .. tostring(err) end
end
app:get("/tpl/named", Named)

-- an uncaught template error: a 500 whose log names the template's line
local Broken = Page:extend()
function Broken:get() return self:render(self:get_argument("name", "broken.html"), {}) end
app:get("/tpl/broken", Broken)

-- templates from a folder the test rewrites (recompiled on change)
local changing = template.new{ dir = os.getenv("MIXINS_TPL_DIR") or "/nonexistent" }
app:get("/tpl/changing", function(req)
    return changing:render("live.html", { who = req:arg("who", "nobody") })
end)

-- function routes render through the app
app:get("/tpl/fn", function(req) return app:render("escape.html", { name = req:arg("name", "fn") }) end)

-- a pluggable compile step: an engine given to an app-like table
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local upper = template.for_app{
    template_dir = HERE .. "/templates",
    template_engine = { compile = function(source, name)
        return function(env) return (source:upper():gsub("NAME", tostring(env.name))) end
    end },
}
app:get("/tpl/custom", function(req) return upper:render("plain.txt", { name = "zed" }) end)

-- Secure cookies -----------------------------------------------------------------

local Cookie = Page:extend()
function Cookie:get(action)
    if action == "set" then
        self:set_secure_cookie("sc", self:get_argument("value", "hello"))
        return "set"
    end
    local days = tonumber(self:get_argument("days", ""))
    local v = self:get_secure_cookie("sc", days)
    return v == nil and "nil" or ("value:" .. v)
end
app:get("/cookie/:action", Cookie)

-- Sessions ---------------------------------------------------------------------------

local Session = Page:extend()
function Session:get(action)
    local s = self.session
    if action == "incr" then
        s.n = (s.n or 0) + 1
        s.nested = s.nested or { list = {} }
        s.nested.list[#s.nested.list + 1] = s.n
    elseif action == "clear" then
        for k in pairs(s) do s[k] = nil end
    end
    return { n = s.n, nested = s.nested }
end
app:get("/session/:action", Session)

-- Auth -----------------------------------------------------------------------------------

local Private = Page:extend()
Private.get = auth.authenticated(function(self) return "hi " .. self:current_user() end)
app:get("/private", Private)

local Api = Page:extend()
Api.login_url = false
Api.get = auth.authenticated(function(self) return "api hi " .. self:current_user() end)
app:get("/api/private", Api)

local Login = Page:extend()
function Login:get() return self:render("login.html", { next = self:get_argument("next", "/private") }) end
function Login:post()
    local name, pw = self:get_argument("username", ""), self:get_argument("password", "")
    local hash = USERS[name]
    if not (hash and auth.verify_password(pw, hash)) then
        return self:render("login.html", { next = self:get_argument("next", "/private"), failed = true }, 401)
    end
    self.session.user = name
    return self:redirect(self:get_argument("next", "/private"))
end
app:route("/login", Login)

app:get("/logout", Page:extend{ get = function(self)
    self.session.user = nil
    return self:redirect("/login")
end })

app:post("/hash", function(req)
    local h = auth.hash_password(req:arg("pw", ""))
    return { hash = h, ok = auth.verify_password(req:arg("pw", ""), h),
             wrong = auth.verify_password(req:arg("pw", "") .. "x", h) }
end)

-- CSRF ------------------------------------------------------------------------------------

local Form = Page:extend(csrf.CSRFMixin)
function Form:get() return self:render("form.html", {}) end
function Form:post() return "accepted " .. tostring(self:get_argument("text")) end
function Form:delete() return "deleted" end
app:route("/csrf/form", Form)

return app
