"""docs/reference.md (Commands, Routes, Handlers, Requests) through a real Mongrel2,
driven with http.client and raw sockets. One `lubeck serve tests/e2e/apps/core`
is shared by the module; tests that need a server of their own start one."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, LUBECK, Response, Server, free_port

LUBECK_404 = "<h1>404 Not Found</h1>"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(os.path.join(APPS, "core"), tmp_path_factory.mktemp("core-run"))
    yield server
    server.stop()


# ---- helpers ------------------------------------------------------------------

def send(server, method, path, headers=(), body=None, timeout=10):
    """One request with headers given as a list of pairs (names may repeat)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data)
    finally:
        conn.close()


def raw_exchange(server, data, timeout=3):
    """Sends raw bytes; returns (bytes read, closed by the server, seconds)."""
    started = time.time()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        chunks, closed = [], False
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    closed = True
                    break
                chunks.append(b)
        except socket.timeout:
            pass
    return b"".join(chunks), closed, time.time() - started


def head_and_body(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], headers, body


def jget(server, path, **kw):
    r = server.get(path, **kw)
    assert r.status == 200, (r.status, r.text)
    assert r.header("Content-Type") == "application/json"
    return json.loads(r.body)


def error_block(server, needle, timeout=5):
    """The stderr lines from the first one holding needle to the next log line."""
    server.process.wait_line(needle, stream="err", timeout=timeout)
    lines = list(server.stderr)
    start = next(i for i, l in enumerate(lines) if needle in l)
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.startswith("lubeck"):
            break
        block.append(line)
    return block


# ---- §3 routes ---------------------------------------------------------------------

def test_regex_route_passes_captures_in_order(srv):
    assert jget(srv, "/re/12/abc") == {"args": ["12", "abc"], "n": 2, "params": {}}


def test_regex_named_groups_land_in_params(srv):
    got = jget(srv, "/named/2024/hello-world")
    assert got["args"] == ["2024", "hello-world"]
    assert got["params"] == {"year": "2024", "slug": "hello-world"}
    got = jget(srv, "/mixed/7/bob")
    assert got["args"] == ["7", "bob"]
    assert got["params"] == {"name": "bob"}


def test_regex_group_that_did_not_match_is_passed_as_nil(srv):
    assert jget(srv, "/opt/5/abc") == {"args": ["5", "abc"], "n": 2, "params": {"word": "abc"}}
    assert jget(srv, "/opt/abc") == {"args": [None, "abc"], "n": 2, "params": {"word": "abc"}}


def test_regex_route_is_anchored_at_the_start_only(srv):
    assert jget(srv, "/prefix/abc/anything/else")["args"] == ["abc"]
    r = srv.get("/x/prefix/abc")
    assert r.status == 404
    assert srv.get("/re/12/abc/more").status == 404      # '$' pins the end


def test_path_template_segment(srv):
    assert jget(srv, "/users/42") == {"args": ["42"], "n": 1, "params": {"id": "42"}}
    got = jget(srv, "/users/42/posts/7")
    assert got["args"] == ["42", "7"]
    assert got["params"] == {"id": "42", "post": "7"}
    # ':id' is one segment and the template matches the whole path
    assert srv.get("/users/42/extra").status == 404
    assert srv.get("/users/").status == 404


def test_path_template_rest(srv):
    got = jget(srv, "/files/docs/2024/report.pdf")
    assert got["args"] == ["docs/2024/report.pdf"]
    assert got["params"] == {"path": "docs/2024/report.pdf"}


def test_first_matching_route_wins(srv):
    r = srv.get("/first/fixed")
    assert r.status == 200 and r.text == "first:fixed"


def test_get_and_post_routes_on_one_path(srv):
    assert srv.get("/same").text == "get same"
    r = srv.post("/same", body=b"payload")
    assert r.status == 200 and r.text == "post same:payload"


def test_no_route_is_404_from_the_app(srv):
    r = srv.get("/no/such/page")
    assert r.status == 404
    assert LUBECK_404 in r.text
    assert r.header("Content-Type") == "text/html; charset=utf-8"


def test_405_lists_the_allowed_methods(srv):
    r = srv.post("/only-get", body=b"x")
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD, OPTIONS"
    assert "405 Method Not Allowed" in r.text
    r = srv.get("/multi")
    assert r.status == 405
    assert r.header("Allow") == "PUT, DELETE, OPTIONS"
    assert srv.request("PUT", "/multi").text == "put multi"
    assert srv.request("DELETE", "/multi").text == "delete multi"


def test_route_with_a_method_list(srv):
    assert srv.get("/both").text == "both:GET"
    assert srv.post("/both", body=b"").text == "both:POST"
    r = srv.request("PUT", "/both", body=b"")
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD, POST, OPTIONS"


def test_head_on_a_get_route_drops_the_body(srv):
    full = srv.get("/users/42")
    data, closed, _ = raw_exchange(
        srv, b"HEAD /users/42 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, headers, body = head_and_body(data)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == [str(len(full.body))]
    assert headers["content-type"] == ["application/json"]
    assert body == b"" and closed


def test_options_is_204_with_allow(srv):
    r = srv.request("OPTIONS", "/users/42")
    assert r.status == 204
    assert r.header("Allow") == "GET, HEAD, OPTIONS"
    assert r.body == b""
    r = srv.request("OPTIONS", "/multi")
    assert r.status == 204 and r.header("Allow") == "PUT, DELETE, OPTIONS"
    # a route that takes every method answers OPTIONS itself
    assert srv.request("OPTIONS", "/any").text == "any:OPTIONS"


# ---- §4 what a function handler returns ---------------------------------------------

def test_string_is_200_html(srv):
    r = srv.get("/ret/string")
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert r.body == b"a string"
    assert r.header("Content-Length") == "8"


def test_table_is_200_json(srv):
    assert jget(srv, "/ret/table") == {"answer": 42, "list": [1, 2, 3], "nested": {"ok": True}}


def test_status_body_headers(srv):
    r = srv.get("/ret/status-body-headers")
    assert r.status == 201
    assert r.body == b"created it"
    assert r.header("X-Thing") == "yes"
    assert r.header("Content-Type") == "text/plain"
    r = srv.get("/ret/status-table")
    assert r.status == 202
    assert r.header("Content-Type") == "application/json"
    assert json.loads(r.body) == {"queued": True}
    r = srv.get("/ret/status-only")
    assert r.status == 404 and r.body == b""


def test_returned_table_keeps_a_content_type_the_handler_chose(srv):
    r = srv.get("/ret/status-table-type")
    assert r.status == 422
    assert r.header("Content-Type") == "application/problem+json"
    assert json.loads(r.body) == {"title": "bad"}


def test_nil_is_204(srv):
    r = srv.get("/ret/nil")
    assert r.status == 204
    assert r.body == b""
    assert r.header("Content-Length") is None
    r = srv.get("/ret/empty-string")                 # "" is a body, not nil
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == "0"


# ---- §4 class handlers ------------------------------------------------------------------

def test_class_dispatches_on_the_method(srv):
    r = srv.get("/thing/5")
    assert (r.status, r.text) == (200, "get 5")
    r = srv.post("/thing/5", body=b"data")
    assert (r.status, r.text) == (201, "post 5:data")
    r = srv.request("PUT", "/thing/5", body=b"new")
    assert r.status == 200 and json.loads(r.body) == {"method": "put", "id": "5", "body": "new"}
    r = srv.request("PATCH", "/thing/5", body=b"")
    assert (r.status, r.text) == (200, "patch 5")
    r = srv.request("DELETE", "/thing/5")
    assert (r.status, r.body) == (204, b"")


def test_class_head_options_and_405(srv):
    r = srv.request("HEAD", "/thing/5")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == "5"
    everything = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    r = srv.request("OPTIONS", "/thing/5")
    assert r.status == 204 and r.header("Allow") == everything
    r = srv.request("PROPFIND", "/thing/5")
    assert r.status == 405 and r.header("Allow") == everything
    r = srv.post("/class-get-only", body=b"")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD, OPTIONS"
    r = srv.get("/class-post-only")
    assert r.status == 405 and r.header("Allow") == "POST, OPTIONS"
    r = srv.request("HEAD", "/class-post-only")
    assert r.status == 405


def test_prepare_can_end_the_request_and_on_finish_runs(srv):
    before = jget(srv, "/counters")
    r = srv.get("/guarded")
    assert r.status == 302
    assert r.header("Location") == "/login?next=/guarded"
    after = jget(srv, "/counters")
    assert after["guarded_get"] == before["guarded_get"]          # get() skipped
    assert after["finished"] == before["finished"] + 1             # on_finish ran
    r = srv.get("/guarded?token=s3cret")
    assert (r.status, r.text) == (200, "the secret")
    last = jget(srv, "/counters")
    assert last["guarded_get"] == before["guarded_get"] + 1
    assert last["finished"] == before["finished"] + 2


def test_mixins_copy_methods_in_order_and_run_included_once_per_class(srv):
    a = jget(srv, "/mixin/a")
    assert a["greet"] == "greet from Greeter"
    assert a["who"] == "Shouter"                 # the later mixin wins
    assert a["greeting"] == "included into a class"
    assert a["included"] == 2                     # two classes include Greeter
    b = jget(srv, "/mixin/b")
    assert b == {"who": "Greeter", "included": 2}
    assert jget(srv, "/mixin/a")["included"] == 2  # not once per request


def test_json_handler_answers_errors_as_json(srv):
    assert jget(srv, "/api/7") == {"id": "7"}
    for path, status, error in (("/api/missing", 404, "not found"),
                                ("/api/forbidden", 403, "forbidden")):
        r = srv.get(path)
        assert r.status == status
        assert r.header("Content-Type") == "application/json"
        assert json.loads(r.body) == {"status": status, "error": error}
    r = srv.post("/api/7", body=b"")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD, OPTIONS"
    assert json.loads(r.body) == {"status": 405, "error": "method not allowed"}
    r = srv.get("/api/boom")
    assert r.status == 500
    assert json.loads(r.body) == {"status": 500, "error": "internal server error"}
    r = srv.get("/api/json")
    assert r.status == 201 and json.loads(r.body) == {"id": "json", "made": "by json()"}


def test_abort(srv):
    r = srv.get("/abort/plain")
    assert r.status == 403
    assert "403 Forbidden" in r.text
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    r = srv.get("/abort/string")
    assert r.status == 409 and r.body == b"conflict: <raw>"
    r = srv.get("/abort/table")
    assert r.status == 422
    assert r.header("Content-Type") == "application/json"
    assert json.loads(r.body) == {"why": "bad input", "fields": ["a"]}
    r = srv.get("/abort/deep")
    assert r.status == 401 and "401 Unauthorized" in r.text
    r = srv.get("/abort/class")
    assert r.status == 418 and r.body == b"short and stout"
    assert r.header("X-Before-Abort") == "kept"


def test_error_is_500_without_details_and_logged_with_traceback(srv):
    r = srv.get("/boom")
    assert r.status == 500
    assert "500 Internal Server Error" in r.text
    assert "kaboom" not in r.text and "traceback" not in r.text and "app.lua" not in r.text
    block = error_block(srv, "kaboom: secret internals")
    assert "GET /boom" in block[0]
    assert "app.lua" in block[0]
    text = "\n".join(block)
    assert "stack traceback:" in text
    assert "in function 'explode'" in text


def test_error_in_a_class_after_write_is_a_clean_500(srv):
    r = srv.get("/boom/class")
    assert r.status == 500
    assert "half a page" not in r.text
    assert r.header("X-Prepared") is None
    assert "500 Internal Server Error" in r.text


def test_debug_app_shows_the_traceback(serve):
    server = serve("core_debug")
    r = server.get("/boom")
    assert r.status == 500
    assert "debug kaboom" in r.text
    assert "stack traceback:" in r.text
    assert "in function &#39;explode&#39;" in r.text      # HTML-escaped
    r = server.get("/api/boom")
    assert r.status == 500
    body = json.loads(r.body)
    assert body["status"] == 500 and body["error"] == "internal server error"
    assert "debug kaboom" in body["traceback"] and "stack traceback:" in body["traceback"]


@pytest.mark.parametrize("path,header,leak", [
    ("/bad-header/function", "X-Evil", b"Injected"),
    ("/bad-header/class", "X-Split", b"Injected"),
    ("/bad-header/json", "X-Also-Bad", b"smuggled"),
    ("/bad-header/name", "X-Name", b"Injected"),
    ("/bad-header/raw", "X-Raw", b"Injected"),       # the host's own check
])
def test_header_with_cr_or_lf_is_a_500(srv, path, header, leak):
    data, closed, _ = raw_exchange(
        srv, ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path).encode())
    status, headers, body = head_and_body(data)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert leak not in data
    assert header.lower().encode() not in data.lower()
    assert b"never" not in data
    # the app's error page, not the host's last-resort one
    assert headers.get("content-type") == ["text/html; charset=utf-8"]
    assert b"<h1>500 Internal Server Error</h1>" in body
    assert closed
    block = error_block(srv, "header '%s" % header)
    assert path in block[0]


# ---- §4 the response calls on self ---------------------------------------------------

def test_status_headers_write_finish(srv):
    r = srv.get("/resp/status-headers")
    assert r.status == 202
    assert r.header_list("X-One") == ["uno"]
    assert r.header_list("X-Many") == ["a", "b"]
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.body == b"part one, part two"
    r = srv.get("/resp/finish-chunk")
    assert r.body == b"ab"


def test_json_and_redirect(srv):
    r = srv.get("/resp/json")
    assert r.status == 201 and r.header("Content-Type") == "application/json"
    assert json.loads(r.body) == {"made": "by json", "list": ["x"]}
    r = srv.get("/resp/json-bare")
    assert r.status == 200 and json.loads(r.body) == {"bare": True}
    r = srv.get("/resp/redirect")
    assert r.status == 302 and r.header("Location") == "/somewhere?x=1"
    r = srv.get("/resp/redirect-301")
    assert r.status == 301 and r.header("Location") == "https://example.test/moved"


def test_cookies(srv):
    r = srv.get("/resp/cookies")
    assert r.status == 200
    cookies = r.header_list("Set-Cookie")
    assert len(cookies) == 3
    plain, full, gone = cookies
    assert plain.startswith("plain=v1;") and "Path=/" in plain
    parts = [p.strip() for p in full.split(";")]
    assert parts[0] == "full=v2"
    for want in ("Path=/p", "Domain=example.test", "Max-Age=3600",
                 "Expires=Fri, 02 Jan 1970 00:00:00 GMT", "Secure", "HttpOnly",
                 "SameSite=Strict"):
        assert want in parts, (want, parts)
    gparts = [p.strip() for p in gone.split(";")]
    assert gparts[0] == "gone="
    assert "Max-Age=0" in gparts
    assert any(p.startswith("Expires=") and "1970" in p for p in gparts)


def test_status_and_headers_on_self_apply_to_the_returned_value(srv):
    r = srv.get("/resp/status-then-return")
    assert r.status == 201
    assert r.header("X-From-Self") == "yes"
    assert json.loads(r.body) == {"returned": True}


def test_nil_after_a_write_sends_what_was_written(srv):
    r = srv.get("/resp/write-only")
    assert r.status == 200 and r.body == b"written, not returned"


def test_instance_fields(srv):
    assert jget(srv, "/resp/self") == {"app": "core", "path": "/resp/self",
                                       "params": {"what": "self"}}


def test_write_error_override_shapes_every_error_page(srv):
    for path, status in (("/custom/abort", 404), ("/custom/boom", 500)):
        r = srv.get(path)
        assert r.status == status
        assert r.header("X-Custom-Error") == str(status)
        assert r.body == b"custom page for %d" % status
    r = srv.post("/custom/x", body=b"")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD, OPTIONS"
    assert r.body == b"custom page for 405"
    assert srv.get("/custom/ok").text == "fine"


def test_a_failing_write_error_falls_back_to_the_plain_page(srv):
    r = srv.get("/broken-errors")
    assert r.status == 500
    assert "<h1>500 Internal Server Error</h1>" in r.text
    block = error_block(srv, "write_error is broken too")
    assert "/broken-errors" in block[0]


def test_get_argument_and_get_arguments(srv):
    got = jget(srv, "/resp/args?name=first&many=1&many=2&name=last")
    assert got["name"] == "last"
    assert got["missing"] is True
    assert got["default"] == "fallback"
    assert got["many"] == ["1", "2"]
    assert got["none"] == 0
    assert got["params"] == {"what": "args"}


def test_flush_streams_chunked(srv):
    r = srv.get("/stream/ok")
    assert r.status == 200
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.header("Content-Length") is None
    assert r.body == b"first chunk;second chunk;last"


def test_error_after_flush_closes_the_connection(srv):
    data, closed, seconds = raw_exchange(srv, b"GET /stream/boom HTTP/1.1\r\nHost: t\r\n\r\n")
    assert closed and seconds < 2.5
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"second chunk;" in data
    assert not data.endswith(b"0\r\n\r\n")       # no clean end: the client can tell
    assert b"kaboom" not in data


def test_streamed_response_to_http10_is_not_chunked(srv):
    data, closed, _ = raw_exchange(srv, b"GET /stream/ok HTTP/1.0\r\n\r\n")
    status, headers, body = head_and_body(data)
    assert status == "HTTP/1.0 200 OK" and closed
    assert "transfer-encoding" not in headers
    assert body == b"first chunk;second chunk;last"


def test_head_of_a_streamed_response_does_not_claim_an_empty_body(srv):
    data, closed, _ = raw_exchange(
        srv, b"HEAD /stream/ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, headers, body = head_and_body(data)
    assert status == "HTTP/1.1 200 OK" and body == b""
    assert headers.get("content-length") != ["0"]


# ---- §5 requests --------------------------------------------------------------------

def test_request_fields(srv):
    r = send(srv, "POST", "/req/echo/one/two/three?x=1&y=%20", body=b"the body",
             headers=[("X-Custom", "cv")])
    assert r.status == 200
    got = json.loads(r.body)
    assert got["method"] == "POST"
    assert got["path"] == "/req/echo/one/two/three"
    assert got["query"] == "x=1&y=%20"
    assert got["uri"] == "/req/echo/one/two/three?x=1&y=%20"
    assert got["version"] == "HTTP/1.1"
    assert got["body"] == "the body"
    assert got["remote_addr"] == "127.0.0.1"
    assert isinstance(got["conn_id"], int) and got["conn_id"] > 0
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        got["sender"])
    assert got["params"] == {"a": "one", "rest": "two/three"}


def test_query_is_empty_string_without_one(srv):
    got = jget(srv, "/req/echo")
    assert got["query"] == ""
    assert got["uri"] == "/req/echo"
    assert got["body"] == ""
    assert got["params"] == {}


def test_request_headers(srv):
    r = send(srv, "GET", "/req/echo", headers=[
        ("X-Custom", "cv"), ("X-Rep", "a"), ("X-Rep", "b"), ("METHOD", "EVIL")])
    got = json.loads(r.body)
    assert got["x_custom"] == ["cv", "cv", "cv"]       # any case finds it
    assert got["x_rep_list"] == ["a", "b"]
    assert got["x_rep_joined"] == "a, b"
    assert got["missing_header"] is True
    assert got["headers"]["x-custom"] == "cv"
    assert got["headers"]["host"].startswith("127.0.0.1")
    # Mongrel2's own upper-case keys are not headers; a client's "METHOD" header is
    assert "PATH" not in got["headers"] and "URI" not in got["headers"]
    assert got["m2_method"] == "EVIL"
    assert got["method"] == "GET"


def test_header_values_arrive_byte_exact(srv):
    # Mongrel2 copies control and non-UTF-8 bytes raw into its JSON (docs/protocol.md, Header keys)
    value = "a\tb \x01 \xff\xfe \"quoted\" back\\slash"
    r = send(srv, "GET", "/req/header/x-weird", headers=[("X-Weird", value)])
    assert r.status == 200
    assert r.body == value.encode("latin-1")
    assert send(srv, "GET", "/req/header/x-none").status == 404


def test_a_forged_upload_header_does_not_swallow_the_request(srv):
    r = send(srv, "GET", "/ret/string", headers=[("X-Mongrel2-Upload-Start", "/etc/passwd")],
             timeout=1)
    assert r.status == 200 and r.body == b"a string"


def test_arguments_from_query_and_form(srv):
    r = send(srv, "POST", "/req/args?a=1&a=2&b=x&sp=a+b%20c",
             headers=[("Content-Type", "application/x-www-form-urlencoded")],
             body=b"a=3&c=y%21")
    got = json.loads(r.body)
    assert got["a"] == "3"                    # the form comes after the query: last wins
    assert got["b"] == "x"
    assert got["list"] == ["1", "2", "3"]
    assert got["space"] == "a b c"
    assert got["dflt"] == "dflt" and got["missing"] is True and got["empty_list"] == 0
    assert got["args"] == {"a": "3", "b": "x", "c": "y!", "sp": "a b c"}


def test_form_body_is_not_parsed_without_the_form_content_type(srv):
    r = send(srv, "POST", "/req/args?b=q", headers=[("Content-Type", "text/plain")],
             body=b"a=3")
    got = json.loads(r.body)
    assert got["a"] is False and got["b"] == "q"


def test_multipart_form(srv):
    boundary = "XyZzY"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nfrom form\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"up\"; filename=\"n.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\nfile body\r\n--%s--\r\n"
            % (boundary, boundary, boundary)).encode()
    r = send(srv, "POST", "/req/form?a=q",
             headers=[("Content-Type", "multipart/form-data; boundary=" + boundary)], body=body)
    got = json.loads(r.body)
    assert got["list"] == ["q", "from form"]
    assert got["files"]["up"] == {"filename": "n.txt", "content_type": "text/plain",
                                  "body": "file body"}


def test_json_body(srv):
    r = send(srv, "POST", "/req/json", body=b'{"k": [1, 2], "s": "x"}',
             headers=[("Content-Type", "application/json")])
    assert json.loads(r.body) == {"ok": True, "value": {"k": [1, 2], "s": "x"}, "err": False}
    got = json.loads(send(srv, "POST", "/req/json", body=b"{bad").body)
    assert got["ok"] is False and got["value"] is False
    assert isinstance(got["err"], str) and got["err"]
    got = json.loads(send(srv, "POST", "/req/json", body=b"").body)
    assert got["ok"] is False and got["err"]


def test_cookies_of_the_request(srv):
    got = jget(srv, "/req/cookie", headers={"Cookie": "sid=abc123; other=x"})
    assert got == {"sid": "abc123", "other": "x", "missing": True}
    # two Cookie headers (Mongrel2 hands them over as a list) are one cookie jar
    got = json.loads(send(srv, "GET", "/req/cookie",
                          headers=[("Cookie", "sid=one"), ("Cookie", "other=two")]).body)
    assert got == {"sid": "one", "other": "two", "missing": True}


# ---- protocol ---------------------------------------------------------------------------

def test_http10_gets_an_answer_and_the_connection_closes(srv):
    data, closed, seconds = raw_exchange(srv, b"GET /ret/string HTTP/1.0\r\n\r\n")
    status, headers, body = head_and_body(data)
    assert status == "HTTP/1.0 200 OK"
    assert body == b"a string"
    assert headers["connection"] == ["close"]
    assert closed and seconds < 2


def test_connection_close_on_http11_closes(srv):
    data, closed, seconds = raw_exchange(
        srv, b"GET /ret/string HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, headers, body = head_and_body(data)
    assert status == "HTTP/1.1 200 OK" and body == b"a string"
    assert headers["connection"] == ["close"]
    assert closed and seconds < 2


def test_keep_alive_serves_two_requests_on_one_connection(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("GET", "/req/echo")
        r1 = conn.getresponse()
        first = json.loads(r1.read())
        assert not r1.will_close
        sock = conn.sock
        conn.request("POST", "/req/echo", body=b"second")
        r2 = conn.getresponse()
        second = json.loads(r2.read())
        assert conn.sock is sock                    # no reconnect happened
        assert second["body"] == "second"
        assert first["conn_id"] == second["conn_id"]  # Mongrel2 saw one connection
    finally:
        conn.close()


def test_one_mib_body_round_trip(srv):
    body = os.urandom(1 << 20)
    r = srv.post("/echo", body=body, headers={"Content-Type": "application/octet-stream"},
                 timeout=20)
    assert r.status == 200
    assert r.header("X-Body-Length") == str(len(body))
    assert r.body == body


def test_chunked_request_body(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", "/echo", body=iter([b"hel", b"lo"]), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b"hello"
    finally:
        conn.close()


def test_200_concurrent_requests(srv):
    def one(i):
        r = srv.get("/slow/%d" % i, timeout=20)
        return r.status, json.loads(r.body)["n"] if r.status == 200 else r.text

    started = time.time()
    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    assert results == [(200, str(i)) for i in range(200)]
    # each sleeps 50 ms: served one at a time they would take 10 s
    assert time.time() - started < 8


def test_access_log_line(srv):
    r = srv.get("/users/4242")
    line = srv.process.wait_line(" /users/4242 ")
    m = re.fullmatch(r"127\.0\.0\.1 GET /users/4242 200 (\d+) (\d+(?:\.\d+)?)ms", line)
    assert m, line
    assert int(m.group(1)) == len(r.body)
    srv.request("DELETE", "/users/99")
    line = srv.process.wait_line(" /users/99 ")
    assert re.fullmatch(r"127\.0\.0\.1 DELETE /users/99 405 \d+ [\d.]+ms", line), line


def test_static_files_are_served_by_mongrel2(srv):
    r = srv.get("/static/hello.txt")
    assert r.status == 200
    assert r.body == b"static file from core\n"
    assert (r.header("Server") or "").startswith("Mongrel2")


@pytest.mark.parametrize("path", ["/s", "/st", "/stat", "/static", "/stats/today"])
def test_prefixes_of_static_reach_the_app(srv, path):
    r = srv.get(path)
    assert r.status == 404
    assert LUBECK_404 in r.text
    srv.process.wait_line("GET %s 404 " % path)     # the app, not the Dir, answered


# ---- §1 command line -------------------------------------------------------------------

def run_cli(*args, timeout=20):
    return subprocess.run([LUBECK] + list(args), capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    r = run_cli("--version")
    assert r.returncode == 0
    assert re.match(r"lubeck \d+\.\d+", r.stdout)
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("serve", "run", "check", "m2conf"):
        assert "lubeck " + cmd in r.stdout


def test_unknown_command_is_a_usage_error():
    r = run_cli("frobnicate")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "frobnicate" in lines[0]


def test_check_a_good_app():
    r = run_cli("check", os.path.join(APPS, "core"))
    assert r.returncode == 0, r.stderr


def write_app(tmp_path, source):
    (tmp_path / "app.lua").write_text(source)
    return str(tmp_path)


def test_check_reports_a_syntax_error_with_its_line(tmp_path):
    app = write_app(tmp_path, 'local lubeck = require "lubeck"\n'
                              'local app = lubeck.app{}\n'
                              'app:get("/", function() return "x" end\n'
                              'return app\n')
    r = run_cli("check", app)
    assert r.returncode == 1
    assert re.search(r"app\.lua:[34]:", r.stderr), r.stderr


@pytest.mark.parametrize("line", [
    'app:route("^/(unclosed", function() end)',
    'app:get("/users/:id/:id", function() end)',
])
def test_check_names_the_line_of_a_bad_route(tmp_path, line):
    app = write_app(tmp_path, 'local lubeck = require "lubeck"\n'
                              'local app = lubeck.app{}\n'
                              'app:get("/", function() return "x" end)\n'
                              '\n' + line + '\n'
                              'return app\n')
    r = run_cli("check", app)
    assert r.returncode == 1
    first = r.stderr.strip().splitlines()[0]
    assert re.search(r"app\.lua:5: bad route pattern", first), r.stderr


def test_m2conf_prints_a_config_with_the_port():
    r = run_cli("m2conf", os.path.join(APPS, "core"), "--port", "23456")
    assert r.returncode == 0
    assert re.search(r"\bport\s*=\s*23456\b", r.stdout)
    assert "Handler(" in r.stdout and "Server(" in r.stdout
    assert "'/static/'" in r.stdout


def test_serve_without_app_lua_fails(tmp_path):
    r = run_cli("serve", str(tmp_path), "--port", str(free_port()),
                "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 1
    assert "app.lua" in r.stderr


def mongrel2_pids(run_dir):
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.startswith("mongrel2 ") and run_dir in args:
            pids.append(int(pid))
    return pids


def test_sigterm_stops_serve_and_its_mongrel2(serve):
    server = serve("core")
    assert server.get("/ret/string").status == 200
    assert mongrel2_pids(server.run_dir), "mongrel2 for this run dir is not running"
    server.process.signal(signal.SIGTERM)
    assert server.process.proc.wait(15) == 0
    deadline = time.time() + 5
    while mongrel2_pids(server.run_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert mongrel2_pids(server.run_dir) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_check_reports_a_template_syntax_error_with_its_line(tmp_path):
    app = tmp_path / "app"
    (app / "templates" / "parts").mkdir(parents=True)
    (app / "app.lua").write_text('local app = require("lubeck").app{}\n'
                                 'app:get("/", function() return "x" end)\nreturn app\n')
    (app / "templates" / "ok.html").write_text("<p><%= 1 + 1 %></p>\n")
    (app / "templates" / "parts" / "bad.html").write_text("one\n<% if x then %>\n<%= 1 + %>\n")
    out = subprocess.run([LUBECK, "check", str(app)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "parts/bad.html:3:" in out.stderr
    (app / "templates" / "parts" / "bad.html").write_text("<%= 2 %>\n")
    assert subprocess.run([LUBECK, "check", str(app)], capture_output=True).returncode == 0
