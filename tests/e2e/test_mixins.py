"""docs/mixins.md through a real Mongrel2: templates (escaping, layouts, includes,
path refusal, errors with line numbers, recompiling), secure cookies (tampered,
expired, wrong name), sessions (cookie and Redis stores), auth (argon2id,
authenticated, login flow) and CSRF. One `lubeck serve tests/e2e/apps/mixins`
is shared by the module."""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import APPS, LUBECK, Server, free_port

SECRET = b"test-secret-0123456789abcdef-not-for-production"


class Jar:
    """The cookies a browser would keep: Set-Cookie in, Cookie out."""

    def __init__(self):
        self.cookies = {}

    def update(self, res):
        for line in res.header_list("Set-Cookie"):
            pair, _, attrs = line.partition(";")
            name, _, value = pair.strip().partition("=")
            if re.search(r"(?i)max-age=0\b", attrs) or value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return res

    def header(self):
        return "; ".join("%s=%s" % kv for kv in self.cookies.items())

    def request(self, srv, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = self.header()
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return self.update(srv.request(method, path, body=body, headers=h))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(name, value, ts, secret=SECRET):
    """The signed value format of host/services/crypto.h, made independently."""
    v = b64(value.encode())
    mac = hmac.new(secret, ("%s|%s|%d" % (name, v, ts)).encode(), hashlib.sha256).digest()
    return "%s|%d|%s" % (v, ts, b64(mac))


@pytest.fixture(scope="module")
def tpl_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("live-templates")
    (d / "live.html").write_text("v1 <%= who %>\n")
    return d


@pytest.fixture(scope="module")
def srv(tmp_path_factory, tpl_dir):
    os.environ["MIXINS_TPL_DIR"] = str(tpl_dir)
    server = Server(os.path.join(APPS, "mixins"), tmp_path_factory.mktemp("mixins-run"))
    yield server
    server.stop()


# ---- templates ------------------------------------------------------------------

def test_escaped_and_raw_output(srv):
    r = srv.get("/tpl/escape?name=" + urllib.parse.quote("<script>alert(\"x\")</script>&'"))
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    esc = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
    assert r.text == '<p title="%s">Hello, %s!</p>\n<p>raw: <b>bold</b></p>\n' % (esc, esc)
    assert "<script>" not in r.text


def test_function_route_renders_through_app(srv):
    r = srv.get("/tpl/fn?name=" + urllib.parse.quote("a&b"))
    assert r.status == 200 and "Hello, a&amp;b!" in r.text


def test_layout_include_loop_and_status(srv):
    r = srv.get("/tpl/layout")
    assert r.status == 201
    assert r.text == (
        "<!DOCTYPE html>\n<html><head><title>Rows &amp; more</title></head>\n"
        "<body><h1>Rows &amp; more</h1>\n<ul>\n"
        '  <li id="r1">one</li>\n  <li id="r2">&lt;two&gt;</li>\n  <li id="r3">three</li>\n'
        "</ul>\n</body></html>\n")


@pytest.mark.parametrize("name,why", [
    ("../secret.txt", "leaves the template folder"),
    ("parts/../../secret.txt", "leaves the template folder"),
    ("/etc/passwd", "is absolute"),
    ("escape.html\0.txt", "holds NUL"),
])
def test_template_names_cannot_escape(srv, name, why):
    r = srv.get("/tpl/named?name=" + urllib.parse.quote(name))
    assert r.status == 400
    assert why in r.text
    assert "secret file" not in r.text and "root:" not in r.text


def test_missing_template_is_an_error(srv):
    r = srv.get("/tpl/named?name=nope.html")
    assert r.status == 400 and 'template "nope.html" not found' in r.text


def test_syntax_error_names_template_line(srv):
    r = srv.get("/tpl/named?name=broken.html")
    assert r.status == 400
    assert r.text.startswith("refused: broken.html:3: ")


def test_runtime_error_is_500_and_logged_with_line(srv):
    r = srv.get("/tpl/broken?name=runtime.html")
    assert r.status == 500
    assert "missing" not in r.text          # no traceback without debug
    srv.process.wait_line("runtime.html:2: attempt to index global 'missing'", stream="err")


def test_templates_recompile_when_the_file_changes(srv, tpl_dir):
    assert srv.get("/tpl/changing?who=a").text == "v1 a\n"
    assert srv.get("/tpl/changing?who=b").text == "v1 b\n"   # cached
    (tpl_dir / "live.html").write_text("version two <%- who %>!\n")
    assert srv.get("/tpl/changing?who=%3Ci%3E").text == "version two <i>!\n"


def test_pluggable_compile_step(srv):
    assert srv.get("/tpl/custom").text == "CUSTOM zed HERE\n"


# ---- secure cookies -----------------------------------------------------------------

def test_secure_cookie_round_trip(srv):
    jar = Jar()
    r = jar.request(srv, "GET", "/cookie/set?value=" + urllib.parse.quote("hi there; ok"))
    line = r.header("Set-Cookie")
    assert line.startswith("sc=") and "HttpOnly" in line
    assert "hi there" not in line
    assert jar.request(srv, "GET", "/cookie/get").text == "value:hi there; ok"


def test_secure_cookie_format_is_documented(srv):
    ts = int(time.time())
    r = srv.get("/cookie/get", headers={"Cookie": "sc=" + sign("sc", "made outside", ts)})
    assert r.text == "value:made outside"


@pytest.mark.parametrize("tamper", [
    lambda c: "aGFja2Vk" + c[c.index("|"):],                     # other value, same signature
    lambda c: c.rsplit("|", 2)[0] + "|%d|" % (int(c.rsplit("|", 2)[1]) + 1) + c.rsplit("|", 1)[1],
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # signature bytes
    lambda c: c.rsplit("|", 1)[0],                                # no signature
    lambda c: "garbage",
    lambda c: "",
])
def test_tampered_secure_cookie_reads_nil(srv, tamper):
    good = sign("sc", "precious", int(time.time()))
    r = srv.get("/cookie/get", headers={"Cookie": "sc=" + tamper(good)})
    assert r.text == "nil"


def test_secure_cookie_signed_for_another_name_or_secret(srv):
    ts = int(time.time())
    assert srv.get("/cookie/get", headers={"Cookie": "sc=" + sign("other", "x", ts)}).text == "nil"
    assert srv.get("/cookie/get", headers={"Cookie": "sc=" + sign("sc", "x", ts, b"wrong")}).text == "nil"


def test_expired_secure_cookie_reads_nil(srv):
    now = int(time.time())
    ten, forty = sign("sc", "old", now - 10 * 86400), sign("sc", "old", now - 40 * 86400)
    assert srv.get("/cookie/get", headers={"Cookie": "sc=" + ten}).text == "value:old"
    assert srv.get("/cookie/get", headers={"Cookie": "sc=" + forty}).text == "nil"   # default 31 days
    assert srv.get("/cookie/get?days=5", headers={"Cookie": "sc=" + ten}).text == "nil"
    assert srv.get("/cookie/get?days=50", headers={"Cookie": "sc=" + forty}).text == "value:old"


# ---- sessions ----------------------------------------------------------------------------

def test_session_persists_in_signed_cookie(srv):
    jar = Jar()
    for n in (1, 2, 3):
        r = jar.request(srv, "GET", "/session/incr")
        assert r.status == 200 and json.loads(r.body) == {"n": n, "nested": {"list": list(range(1, n + 1))}}
    line = jar.cookies["session"]
    value, ts, _ = line.split("|")
    assert json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))["n"] == 3
    r = jar.request(srv, "GET", "/session/read")
    assert json.loads(r.body)["n"] == 3
    assert r.header("Set-Cookie") is None            # unchanged: no Set-Cookie
    r = jar.request(srv, "GET", "/session/clear")
    assert "Max-Age=0" in r.header("Set-Cookie")
    assert "session" not in jar.cookies
    assert json.loads(jar.request(srv, "GET", "/session/read").body) == {}


def test_session_not_touched_sends_no_cookie(srv):
    assert srv.get("/tpl/escape?name=x").header("Set-Cookie") is None


def test_tampered_session_is_empty(srv):
    ts = int(time.time())
    forged = b64(json.dumps({"user": "ann"}).encode())
    cookie = sign("session", json.dumps({"user": "bob"}), ts)
    cookie = forged + cookie[cookie.index("|"):]
    r = srv.get("/private", headers={"Cookie": "session=" + cookie})
    assert r.status == 302
    # a correctly signed one is honoured (the format is the secure cookie's)
    r = srv.get("/private", headers={"Cookie": "session=" + sign("session", json.dumps({"user": "ann"}), ts)})
    assert r.status == 200 and r.text == "hi ann"


# ---- auth -----------------------------------------------------------------------------------

def test_authenticated_redirects_with_next(srv):
    r = srv.get("/private")
    assert r.status == 302 and r.header("Location") == "/login?next=%2Fprivate"
    r = srv.get("/private?a=1&b=%2F")
    assert r.header("Location") == "/login?next=" + urllib.parse.quote("/private?a=1&b=%2F", safe="")


def test_authenticated_without_login_url_is_401(srv):
    r = srv.get("/api/private")
    assert r.status == 401


def test_login_flow_with_cookie_jar(srv):
    jar = Jar()
    r = jar.request(srv, "GET", "/private?x=1")
    assert r.status == 302
    login = r.header("Location")
    r = jar.request(srv, "GET", login)
    assert r.status == 200 and '<input type="hidden" name="_csrf"' in r.text
    r = jar.request(srv, "POST", "/login?next=%2Fprivate%3Fx%3D1", {"username": "ann", "password": "nope"})
    assert r.status == 401 and "Wrong user name or password" in r.text
    r = jar.request(srv, "POST", "/login?next=%2Fprivate%3Fx%3D1", {"username": "ann", "password": "hunter2"})
    assert r.status == 302 and r.header("Location") == "/private?x=1"
    r = jar.request(srv, "GET", "/private?x=1")
    assert r.status == 200 and r.text == "hi ann"
    r = jar.request(srv, "GET", "/logout")
    assert r.status == 302
    assert jar.request(srv, "GET", "/private").status == 302


def test_unknown_user_is_401(srv):
    r = srv.post("/login", body="username=zed&password=hunter2",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 401


def test_password_hashes_are_argon2id(srv):
    r = srv.post("/hash", body="pw=s3cret", headers={"Content-Type": "application/x-www-form-urlencoded"})
    out = json.loads(r.body)
    assert out["hash"].startswith("$argon2id$v=19$m=65536,t=2,p=1$")
    assert "s3cret" not in out["hash"]
    assert out["ok"] is True and out["wrong"] is False


def test_password_hashing_does_not_block_other_requests(srv):
    """argon2id runs on a thread pool: a quick request is answered while six
    /hash requests (three argon2id runs each) are still working."""
    from concurrent.futures import ThreadPoolExecutor
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with ThreadPoolExecutor(6) as pool:
        started = time.time()
        hashes = [pool.submit(srv.post, "/hash", body="pw=x", headers=form) for _ in range(6)]
        time.sleep(0.05)
        quick_started = time.time()
        assert srv.get("/tpl/escape?name=q").status == 200
        quick = time.time() - quick_started
        assert all(json.loads(f.result().body)["ok"] for f in hashes)
        total = time.time() - started
    assert quick < total / 2, (quick, total)


# ---- CSRF ------------------------------------------------------------------------------------

def form_token(jar, srv):
    r = jar.request(srv, "GET", "/csrf/form")
    return re.search(r'name="_csrf" value="([^"]+)"', r.text).group(1)


def test_csrf_accepts_the_session_token(srv):
    jar = Jar()
    token = form_token(jar, srv)
    r = jar.request(srv, "POST", "/csrf/form", {"_csrf": token, "text": "hello"})
    assert r.status == 200 and r.text == "accepted hello"
    r = jar.request(srv, "DELETE", "/csrf/form", headers={"X-CSRF-Token": token})
    assert r.status == 200 and r.text == "deleted"


def test_csrf_rejects_missing_wrong_or_foreign_tokens(srv):
    jar, other = Jar(), Jar()
    token = form_token(jar, srv)
    foreign = form_token(other, srv)
    assert jar.request(srv, "POST", "/csrf/form", {"text": "x"}).status == 403
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert jar.request(srv, "POST", "/csrf/form", {"_csrf": wrong, "text": "x"}).status == 403
    assert jar.request(srv, "POST", "/csrf/form", {"_csrf": foreign, "text": "x"}).status == 403
    assert jar.request(srv, "DELETE", "/csrf/form", headers={"X-CSRF-Token": "nope"}).status == 403
    # no session at all
    assert srv.post("/csrf/form", body="_csrf=" + token,
                    headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 403
    # safe methods pass
    assert jar.request(srv, "GET", "/csrf/form").status == 200


# ---- secrets and stores (apps of their own) ---------------------------------------------------

def test_session_store_without_secret_fails_at_start(tmp_path):
    app = tmp_path / "nosecret"
    app.mkdir()
    (app / "app.lua").write_text(
        'local lubeck = require "lubeck"\n'
        'local app = lubeck.app{ session_store = require("lubeck.session").cookie() }\n'
        'return app\n')
    p = subprocess.run([LUBECK, "check", str(app)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1
    assert "app.lua:2:" in p.stderr + p.stdout and "cookie_secret" in p.stderr + p.stdout


def test_missing_secret_is_a_clear_error_at_use(serve):
    srv = serve("mixins_nosecret")
    r = srv.get("/session")
    assert r.status == 500
    r = srv.get("/cookie")
    assert r.status == 500
    srv.process.wait_line("self.session needs the app's cookie_secret", stream="err")
    srv.process.wait_line("set_secure_cookie needs the app's cookie_secret", stream="err")
    assert srv.get("/plain").text == "no secret needed"


def redis_cmd(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)
        s.sendall(out.encode())
        return s.recv(65536).decode()


@pytest.fixture
def redis_port(tmp_path):
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                if "PONG" in redis_cmd(port, "PING"):
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_session_store(serve, redis_port):
    os.environ["MIXINS_REDIS_PORT"] = str(redis_port)
    srv = serve("mixins_redis")
    jar = Jar()
    for n in (1, 2):
        r = jar.request(srv, "GET", "/session/incr")
        assert json.loads(r.body) == {"n": n}
    # the cookie holds a signed id, not the data; the data is in Redis
    value = jar.cookies["session"].split("|")[0]
    sid = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    assert "{" not in sid and len(sid) >= 40
    stored = redis_cmd(redis_port, "GET", "sess:" + sid)
    assert '"n":2' in stored
    ttl = redis_cmd(redis_port, "TTL", "sess:" + sid)
    assert 0 < int(ttl.strip()[1:]) <= 31 * 86400
    # a second request with no change writes nothing new
    r = jar.request(srv, "GET", "/session/read")
    assert json.loads(r.body) == {"n": 2} and r.header("Set-Cookie") is None
    # clearing drops the key and the cookie
    r = jar.request(srv, "GET", "/session/clear")
    assert "Max-Age=0" in r.header("Set-Cookie")
    assert redis_cmd(redis_port, "EXISTS", "sess:" + sid).strip() == ":0"
