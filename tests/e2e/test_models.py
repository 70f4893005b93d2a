"""docs/models.md (req.files, forms, uploads, models, self:validate,
app:resource) through a real Mongrel2, plus the hostile inputs: each must get
a clear 400, never a crash or a hang. One `lubeck serve tests/e2e/apps/models
--max-body 20000` serves the module, so a 50 KB body arrives as a Mongrel2
async upload."""
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import APPS, LUBECK, ROOT, Process, Server, free_port, http_request

MAX_BODY = 20000
JSON_CT = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def redis_port():
    exe = shutil.which("redis-server")
    if not exe:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 5
    import socket
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, redis_port):
    old = os.environ.get("LUBECK_TEST_REDIS_PORT")
    if redis_port:
        os.environ["LUBECK_TEST_REDIS_PORT"] = str(redis_port)
    try:
        server = Server(os.path.join(APPS, "models"), tmp_path_factory.mktemp("models-run"),
                        ["--max-body", str(MAX_BODY)])
    finally:
        if old is None:
            os.environ.pop("LUBECK_TEST_REDIS_PORT", None)
        else:
            os.environ["LUBECK_TEST_REDIS_PORT"] = old
    yield server
    server.stop()


def post_json(srv, path, value, method="POST"):
    body = value if isinstance(value, (bytes, str)) else json.dumps(value)
    return srv.request(method, path, body=body, headers=JSON_CT)


def errors_of(r):
    assert r.status == 400, (r.status, r.text)
    doc = json.loads(r.body)
    assert doc["status"] == 400
    return doc["errors"]


def multipart(fields=(), files=(), boundary="----lubeckTest7MA4YWxk"):
    out = []
    for name, value in fields:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, name)).encode()
                   + value.encode() + b"\r\n")
    for name, filename, ctype, data in files:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n" % (boundary, name, filename, ctype)).encode() + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), {"Content-Type": "multipart/form-data; boundary=" + boundary}


def upload_dir(srv):
    return os.path.join(srv.run_dir, "tmp")


# ---- self:validate ----------------------------------------------------------------

GOOD = {"s": "abc", "color": "red", "n": 1, "i": 3, "b": True, "email": "a.b@ex-ample.com",
        "url": "https://u@[::1]:80/p?q#f", "id": "123e4567-e89b-12d3-a456-426614174000",
        "at": "2024-02-29T23:59:60.5+01:00", "address": {"city": "X", "zip": "12345"},
        "points": [1, 2], "junk": 1}


def test_validate_json_cleans(srv):
    r = post_json(srv, "/everything", GOOD)
    assert r.status == 200, r.text
    doc = json.loads(r.body)
    assert "junk" not in doc                     # unknown fields dropped
    assert "secret" not in doc                   # private default filled but not public
    assert doc["address"] == {"city": "X", "zip": "12345"}
    assert doc["points"] == [1, 2]


def test_validate_json_errors_by_path(srv):
    bad = {"s": "a", "color": "blue", "n": 2, "i": 1.5, "b": "x", "email": "bad", "url": "ftp://x",
           "id": "123", "at": "2023-02-29T00:00:00Z", "address": {"zip": "1"}, "points": [1, -1]}
    errs = errors_of(post_json(srv, "/everything", bad))
    assert errs == {
        "s": "must have at least 2 characters", "color": "must be one of: red, green",
        "n": "must be at most 1.5", "i": "must be an integer", "b": "must be true or false",
        "email": "must be an email address", "url": "must be an http or https URL",
        "id": "must be a UUID", "at": "must be an RFC 3339 date-time",
        "address.city": "is required", "address.zip": "does not match the pattern",
        "points.2": "must be at least 0",
    }


def test_validate_form_urlencoded(srv):
    r = srv.post("/todo-form", body="title=hello&order=3&done=on&tag=x&tags=a&tags=b",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r.text
    assert json.loads(r.body) == {"title": "hello", "order": 3, "done": True, "tags": ["a", "b"]}
    errs = errors_of(srv.post("/todo-form", body="title=&order=x&owner=nope",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert errs == {"title": "must have at least 1 character", "order": "must be an integer",
                    "owner": "must be an email address"}


def test_validate_multipart_form(srv):
    body, headers = multipart([("title", "from multipart"), ("order", "7")])
    r = srv.post("/todo-form", body=body, headers=headers)
    assert r.status == 200, r.text
    assert json.loads(r.body) == {"title": "from multipart", "order": 7, "done": False}


def test_schema(srv):
    doc = json.loads(srv.get("/schema").body)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["required"] == ["title"]
    assert doc["properties"]["title"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert doc["properties"]["tags"]["items"] == {"type": "string", "maxLength": 20}
    assert doc["properties"]["owner"]["writeOnly"] is True


# ---- multipart and uploads ------------------------------------------------------------

def test_multipart_fields_and_files(srv):
    body, headers = multipart([("title", "x"), ("tag", "a"), ("tag", "b")],
                              [("doc", "notes.txt", "text/plain", b"hello\r\n--not a boundary")])
    r = srv.post("/echo", body=body, headers=headers)
    assert r.status == 200, r.text
    doc = json.loads(r.body)
    assert doc["args"]["title"] == "x"
    assert doc["tags"] == ["a", "b"]
    assert doc["files"]["doc"] == {"filename": "notes.txt", "content_type": "text/plain",
                                   "size": 23, "head": "hello\r\n--not a b"}


def eventually(check, timeout=3):
    """True once check() holds (polled), False if it never did within timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_async_upload_raw_body(srv):
    data = os.urandom(50000)
    r = srv.request("PUT", "/upload", body=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r.text
    doc = json.loads(r.body)
    f = doc["files"]["file"]
    assert f["size"] == 50000 and doc["body_size"] == 50000
    assert f["content_type"] == "application/octet-stream"
    assert f["path"].startswith(os.path.realpath(upload_dir(srv)) + "/upload.")
    # the handler owned it: deleted when the request ends, which may be a moment
    # after the client has the response
    assert eventually(lambda: not os.path.exists(f["path"]))
    assert eventually(lambda: os.listdir(upload_dir(srv)) == [])


def test_async_upload_multipart(srv):
    data = os.urandom(50000)
    body, headers = multipart([("title", "big")], [("f", "big.bin", "application/octet-stream", data)])
    assert len(body) > MAX_BODY
    r = srv.post("/upload", body=body, headers=headers)
    assert r.status == 200, r.text
    doc = json.loads(r.body)
    assert doc["files"]["f"] == {"filename": "big.bin", "content_type": "application/octet-stream",
                                 "size": 50000}
    assert doc["args"] == {"title": "big"}
    assert eventually(lambda: os.listdir(upload_dir(srv)) == [])


def test_forged_upload_headers_refused(srv, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for headers in (
        {"x-mongrel2-upload-start": str(victim), "x-mongrel2-upload-done": str(victim)},
        {"x-mongrel2-upload-done": str(victim)},
        {"x-mongrel2-upload-start": "/etc/passwd", "x-mongrel2-upload-done": "/etc/passwd"},
        {"x-mongrel2-upload-start": upload_dir(srv) + "/../../x",
         "x-mongrel2-upload-done": upload_dir(srv) + "/../../x"},
    ):
        r = srv.post("/upload", body="x", headers=headers)
        assert r.status == 400, (headers, r.status, r.text)
    assert victim.read_text() == "keep me"
    # a file inside the upload folder, but not what Mongrel2 wrote for this request
    inside = os.path.join(upload_dir(srv), "upload.forged1")
    with open(inside, "w") as f:
        f.write("0123456789")
    try:
        r = srv.post("/upload", body="x", headers={"x-mongrel2-upload-start": inside,
                                                    "x-mongrel2-upload-done": inside})
        assert r.status == 400
        assert os.path.exists(inside)
    finally:
        os.unlink(inside)
    srv.process.wait_line("upload refused", stream="err", timeout=5)


# ---- hostile input ------------------------------------------------------------------------

def test_deep_json_refused(srv):
    errs = errors_of(post_json(srv, "/everything", "[" * 5000 + "]" * 5000))
    assert "deeper" in errs[""]
    errs = errors_of(post_json(srv, "/everything", '{"address":' * 300 + "1" + "}" * 300))
    assert "deeper" in errs[""]


def test_huge_numbers_refused(srv):
    errs = errors_of(post_json(srv, "/everything", '{"i": 123456789012345678901234567890, "n": 1e999}'))
    assert errs["i"] == "must be an integer between -2^53 and 2^53"
    assert errs["n"] in ("must be a finite number", "must be at most 1.5")


def test_invalid_utf8_refused(srv):
    # JSON text is UTF-8 (RFC 8259): such a body is refused whole, before any field
    errs = errors_of(post_json(srv, "/everything", b'{"s": "ab\xff\xfe"}'))
    assert errs == {"": "invalid JSON: the body is not UTF-8"}


def test_duplicate_keys_refused(srv):
    errs = errors_of(post_json(srv, "/everything", '{"s": "abc", "s": "abd"}'))
    assert errs[""].startswith("invalid JSON: duplicate key")
    errs = errors_of(post_json(srv, "/todos", '{"title": "a", "\\u0074itle": "b"}'))
    assert "duplicate key" in errs[""]


def test_bad_json_refused(srv):
    assert "invalid JSON" in errors_of(post_json(srv, "/everything", '{"s": '))[""]
    assert errors_of(post_json(srv, "/everything", "[1,2]")) == {"": "must be an object"}
    assert errors_of(post_json(srv, "/everything", "")) == {"": "a JSON body is required"}


def test_multipart_without_closing_boundary(srv):
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue")
    r = srv.post("/echo", body=body, headers={"Content-Type": "multipart/form-data; boundary=XX"})
    assert r.status == 400
    assert b"closing boundary" in r.body
    r = srv.post("/echo", body=b"x", headers={"Content-Type": "multipart/form-data"})
    assert r.status == 400


def test_ten_mib_of_form_fields(srv):
    field = b"f=" + b"x" * 1000
    body = b"&".join([field] * (10 * 1024))     # ~10 MiB: arrives as an async upload
    r = srv.post("/echo", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"},
                 timeout=30)
    assert r.status == 400
    assert b"too large" in r.body
    many = b"&".join(b"k%d=v" % i for i in range(20000))
    r = srv.post("/echo", body=many, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    # the server is still there
    assert srv.get("/schema").status == 200
    assert eventually(lambda: os.listdir(upload_dir(srv)) == [])


# ---- resources ---------------------------------------------------------------------------------

def check_resource(srv, base):
    r = srv.get(base)
    assert r.status == 200 and r.body == b"[]", r.text
    assert r.header("Content-Type") == "application/json"

    r = post_json(srv, base, {"title": "write tests", "owner": "me@example.com", "tags": ["a"], "x": 1})
    assert r.status == 201, r.text
    item = json.loads(r.body)
    loc = r.header("Location")
    assert loc == "%s/%s" % (base, item["id"])
    assert item == {"id": item["id"], "title": "write tests", "done": False, "tags": ["a"]}

    r2 = post_json(srv, base, {"title": "second"})
    second = json.loads(r2.body)
    assert second["id"] != item["id"]

    r = srv.get(loc)
    assert r.status == 200 and json.loads(r.body) == item
    listed = json.loads(srv.get(base).body)
    assert [t["id"] for t in listed] == [item["id"], second["id"]]
    assert all("owner" not in t for t in listed)

    r = post_json(srv, loc, {"done": True}, method="PATCH")
    assert r.status == 200, r.text
    assert json.loads(r.body) == dict(item, done=True)

    errs = errors_of(post_json(srv, loc, {"done": True}, method="PUT"))
    assert errs == {"title": "is required"}
    r = post_json(srv, loc, {"title": "replaced", "order": 2}, method="PUT")
    assert r.status == 200
    assert json.loads(r.body) == {"id": item["id"], "title": "replaced", "order": 2, "done": False}

    assert errors_of(post_json(srv, base, {"title": "", "order": -1})) == {
        "title": "must have at least 1 character", "order": "must be at least 0"}
    assert errors_of(post_json(srv, loc, {"tags": "x"}, method="PATCH")) == {"tags": "must be a list"}

    assert srv.request("DELETE", loc).status == 204
    for method in ("GET", "DELETE"):
        r = srv.request(method, loc)
        assert r.status == 404 and json.loads(r.body) == {"status": 404, "error": "not found"}
    for method in ("PUT", "PATCH"):
        assert post_json(srv, loc, {"title": "x"}, method=method).status == 404
    assert srv.get(base + "/nope").status == 404
    assert [t["id"] for t in json.loads(srv.get(base).body)] == [second["id"]]
    assert srv.request("DELETE", "%s/%s" % (base, second["id"])).status == 204


def test_resource_memory(srv):
    check_resource(srv, "/todos")


def test_resource_redis(srv, redis_port):
    if not redis_port:
        pytest.skip("redis-server is not installed")
    check_resource(srv, "/rtodos")


def test_todo_app(serve):
    s = serve(os.path.join(ROOT, "apps", "todo"))
    r = s.get("/static/index.html")
    assert r.status == 200 and b"/todos" in r.body
    r = post_json(s, "/todos", {"title": "ship it", "due": "2030-01-01T00:00:00Z"})
    assert r.status == 201
    assert json.loads(s.get("/todos").body)[0]["title"] == "ship it"


# ---- lubeck run --upload-dir (frames played by hand) ----------------------------------------

def run_upload_host(upload_args):
    """A FakeMongrel2 (test_frames.py) whose host runs the models app with upload_args."""
    from test_frames import FakeMongrel2
    return FakeMongrel2("models", upload_args)


def upload_frame(conn_id, path):
    from test_frames import json_frame
    size = str(os.path.getsize(path))
    return json_frame(conn_id, "/upload", method="PUT", extra={
        "content-type": "application/octet-stream", "content-length": size,
        "x-mongrel2-upload-start": path, "x-mongrel2-upload-done": path})


@pytest.mark.parametrize("configured", [False, True])
def test_run_upload_dir(tmp_path, configured):
    updir = tmp_path / "uploads"
    updir.mkdir()
    f = updir / "upload.AbC123"
    f.write_bytes(b"z" * 100)
    m2 = run_upload_host(["--upload-dir", str(updir)] if configured else [])
    try:
        m2.send(upload_frame(7, str(f)))
        res = m2.collect([7])[7]
        if configured:
            assert res[0] == 200, res
            doc = json.loads(res[2])
            assert doc["files"]["file"]["size"] == 100 and doc["body_size"] == 100
            deadline = time.time() + 5
            while f.exists() and time.time() < deadline:
                time.sleep(0.02)
            assert not f.exists()
        else:
            assert res[0] == 400, res
            m2.process.wait_line("no upload folder is configured", stream="err", timeout=5)
            assert f.exists()
    finally:
        m2.close()


# ---- uploads from a chrooted Mongrel2 ------------------------------------------------

CHROOTED_CONF = """
app = Handler(send_spec='{send}', send_ident='{ident}', recv_spec='{recv}', recv_ident='')
main = Server(uuid='{uuid}', name='chrooted', chroot='{root}',
    access_log='/logs/access.log', error_log='/logs/error.log', pid_file='/run/mongrel2.pid',
    control_port='ipc://run/control', default_host='localhost', bind_addr='127.0.0.1',
    port={port}, hosts=[Host(name='localhost', routes={{'/': app}})])
settings = {{'server.daemonize': 0, 'limits.content_length': 65536,
             'upload.temp_store': '/tmp/upload.XXXXXX'}}
servers = [main]
"""


@pytest.fixture
def chrooted_mongrel2(tmp_path):
    """A Mongrel2 that chroots into its own folder (it does as root), as a
    production one does; it names its upload files by their path in there."""
    if os.geteuid() != 0:
        pytest.skip("Mongrel2 chroots only when it runs as root")
    root = tmp_path / "chroot"
    for d in ("logs", "run", "tmp"):
        (root / d).mkdir(parents=True)
    m2 = {"root": str(root), "port": free_port(), "uuid": str(uuid.uuid4()), "ident": str(uuid.uuid4()),
          "send": "tcp://127.0.0.1:%d" % free_port(), "recv": "tcp://127.0.0.1:%d" % free_port()}
    (tmp_path / "m2.conf").write_text(CHROOTED_CONF.format(**m2))
    db = str(tmp_path / "config.sqlite")
    subprocess.run(["m2sh", "load", "-config", str(tmp_path / "m2.conf"), "-db", db], check=True,
                   capture_output=True, env=dict(os.environ, LOGNAME="lubeck"))
    proc = subprocess.Popen(["mongrel2", db, m2["uuid"]], cwd="/", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    yield m2
    proc.terminate()
    proc.wait(10)


def run_host(m2, *args):
    host = Process([LUBECK, "run", os.path.join(APPS, "models"), "--send", m2["send"],
                    "--recv", m2["recv"], "--upload-dir", os.path.join(m2["root"], "tmp")] + list(args))
    deadline = time.time() + 15
    while time.time() < deadline:          # both ZeroMQ links up: a request is answered
        try:
            if http_request(m2["port"], "GET", "/form").status < 500:
                return host
        except OSError:
            pass
        time.sleep(0.2)
    host.stop()
    raise AssertionError("no answer through the chrooted Mongrel2")


def test_run_m2_chroot_reads_uploads_inside_mongrel2s_chroot(chrooted_mongrel2):
    m2 = chrooted_mongrel2
    host = run_host(m2, "--m2-chroot", m2["root"])
    try:
        r = http_request(m2["port"], "PUT", "/upload", body=b"u" * 300000,
                         headers={"Content-Type": "application/octet-stream"})
        assert r.status == 200, r.text
        f = json.loads(r.body)["files"]["file"]
        assert f["size"] == 300000
        assert f["path"].startswith(os.path.realpath(os.path.join(m2["root"], "tmp")) + "/upload.")
    finally:
        host.stop()


def test_without_m2_chroot_a_chrooted_upload_is_refused(chrooted_mongrel2):
    m2 = chrooted_mongrel2
    host = run_host(m2)
    try:
        r = http_request(m2["port"], "PUT", "/upload", body=b"u" * 300000,
                         headers={"Content-Type": "application/octet-stream"})
        assert r.status == 400
        assert r.text == "Bad Request: upload refused\n"
        host.wait_line("the upload path is not inside the upload folder", stream="err", timeout=5)
    finally:
        host.stop()
