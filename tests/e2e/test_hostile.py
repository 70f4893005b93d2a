"""Hostile input and faults, end to end through a real Mongrel2: each case
asserts what the client receives and that a normal request right after still
gets 200 (issue: reliability and security)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, LUBECK, Mongrel2, Process, Server, free_port

APP = os.path.join(APPS, "hostile")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(APP, tmp_path_factory.mktemp("hostile-run"), ["--max-body", "1000000"])
    yield server
    server.stop()


def still_serving(server):
    r = server.get("/")
    assert (r.status, r.text) == (200, "ok")


def test_a_header_value_with_crlf_never_reaches_the_head(srv):
    r = srv.get("/echo-header?v=a%0d%0aSet-Cookie:%20evil=1")
    assert r.status == 500
    assert r.header("Set-Cookie") is None and r.header("X-Echo") is None
    srv.process.wait_line("X-Echo", stream="err", timeout=5)   # (read by a pump thread)
    still_serving(srv)


def test_garbage_cookies_are_tolerated(srv):
    # (control bytes never get this far: Mongrel2 answers 400 to them itself)
    r = srv.get("/cookies", headers={"Cookie": 'a=1; ;;; =x; b; "quoted; c="unterminated; %%=%%; a=2'})
    assert r.status == 200
    assert json.loads(r.text)["a"] == "1"
    still_serving(srv)


def test_json_nested_100000_deep_is_a_400(srv):
    body = "[" * 100000 + "]" * 100000
    r = srv.post("/json", body=body, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert "depth" in r.text or "nest" in r.text
    still_serving(srv)


def test_invalid_utf8_json_is_a_400_or_accepted_without_crash(srv):
    r = srv.post("/json", body=b'{"a":"\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert r.status in (200, 400)
    still_serving(srv)


def test_100000_form_arguments_are_refused(srv):
    body = "&".join("a=%d" % i for i in range(100000))
    r = srv.post("/form", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    still_serving(srv)


def test_a_100_mb_body_goes_to_disk_once(srv):
    """Above --max-body Mongrel2 writes the body to its upload store; the host
    hands the handler the file, never the 100 MB in memory."""
    size = 100 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            s.sendall(chunk)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(body) == {"size": size}
    still_serving(srv)


def test_a_failure_in_prepare_is_a_500(srv):
    r = srv.get("/fail?where=prepare")
    assert r.status == 500 and "boom" not in r.text
    srv.process.wait_line("boom in prepare", stream="err", timeout=5)
    still_serving(srv)


def test_a_failure_in_on_finish_is_logged_after_the_response(srv):
    r = srv.get("/fail?where=on_finish")
    assert (r.status, r.text) == (200, "fine")
    srv.process.wait_line("boom in on_finish", stream="err")
    still_serving(srv)


def test_a_failing_spawned_thread_reports_to_its_waiter(srv):
    r = srv.get("/fail?where=thread")
    assert r.status == 200
    assert json.loads(r.text) == {"thread_ok": False, "thread_err": "boom in a thread"}
    srv.process.wait_line("error in a spawned thread", stream="err")
    still_serving(srv)


def test_past_max_inflight_requests_get_503_with_retry_after(tmp_path):
    server = Server(APP, tmp_path / "run", ["--max-inflight", "4"])
    try:
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda _: server.get("/slow"), range(10)))
        statuses = sorted(r.status for r in results)
        assert statuses.count(200) >= 4 and statuses.count(503) >= 1, statuses
        busy = next(r for r in results if r.status == 503)
        assert busy.header("Retry-After") == "1"
        still_serving(server)
    finally:
        server.stop()


def test_too_many_headers_get_431(tmp_path):
    server = Server(APP, tmp_path / "run", ["--max-headers", "20"])
    try:
        headers = {"X-H%d" % i: "v" for i in range(30)}
        assert server.get("/", headers=headers).status == 431
        still_serving(server)
    finally:
        server.stop()


def test_a_full_disk_for_the_access_log_does_not_stop_serving(tmp_path):
    port = free_port()
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen([LUBECK, "serve", APP, "--port", str(port), "--run-dir",
                                 str(tmp_path / "run")], stdout=full, stderr=subprocess.PIPE,
                                start_new_session=True)
    try:
        import http.client
        deadline = time.time() + 20
        status = None
        while time.time() < deadline and status != 200:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/")
                status = c.getresponse().status
                c.close()
            except OSError:
                time.sleep(0.2)
        assert status == 200
        for _ in range(50):   # every access line fails to be written
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/")
            assert c.getresponse().status == 200
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_the_host_reconnects_when_mongrel2_restarts(tmp_path):
    """`lubeck run` against a Mongrel2 the test runs itself: stop Mongrel2, start
    it again on the same specs, and the host serves again with no help."""
    m2 = Mongrel2(APP, tmp_path / "m2")
    host = Process([LUBECK, "run", APP, "--send", m2.send_spec, "--recv", m2.recv_spec])
    try:
        assert m2.wait_ok()
        m2.stop()
        m2.start()
        assert m2.wait_ok(), "the host did not serve again after Mongrel2 restarted"
    finally:
        host.stop()
        m2.stop()


def test_one_host_serves_two_mongrel2_servers(tmp_path):
    """Several --send/--recv pairs: each reply goes back to the Mongrel2 that
    sent the request (recv_ident = send_ident, docs/protocol.md, Sockets)."""
    a = Mongrel2(APP, tmp_path / "a")
    b = Mongrel2(APP, tmp_path / "b")
    host = Process([LUBECK, "run", APP, "--send", a.send_spec, "--recv", a.recv_spec,
                    "--send", b.send_spec, "--recv", b.recv_spec])
    try:
        assert a.wait_ok() and b.wait_ok()
        for _ in range(10):
            assert a.get("/").text == "ok"
            assert b.get("/").text == "ok"
    finally:
        host.stop()
        a.stop()
        b.stop()


def test_a_stdout_and_stderr_nobody_reads_cost_log_lines_not_answers(tmp_path):
    """`lubeck serve APP 2>&1 | less` and nobody scrolls: the pipe fills up. The
    host keeps answering, drops the access lines and error logs it cannot
    write, and says how many once its output is read again."""
    import http.client
    port = free_port()
    proc = subprocess.Popen([LUBECK, "serve", APP, "--port", str(port), "--run-dir", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert b"serving" in proc.stdout.readline()    # then nobody reads
        def hammer(path, n):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            statuses = []
            for _ in range(n):
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                statuses.append(r.status)
            conn.close()
            return statuses
        # 6,000 ~270-byte access lines: far more than the pipe (64 KiB) and the
        # host's buffer (1 MiB) hold; and three hundred tracebacks on stderr.
        with ThreadPoolExecutor(5) as pool:
            lines = [pool.submit(hammer, "/" + "x" * 240, 1500) for _ in range(4)]
            errors = pool.submit(hammer, "/fail?where=on_finish", 300)
            assert [s for f in lines for s in f.result()] == [404] * 6000
            assert errors.result() == [200] * 300      # on_finish fails after the answer
        os.set_blocking(proc.stdout.fileno(), False)
        notes, partial, deadline = [], b"", time.time() + 10
        def seen(text):
            return any(text in line for line in notes)
        while time.time() < deadline and not (seen(b"access lines dropped") and seen(b"log lines dropped")):
            hammer("/fail?where=on_finish", 1)   # an error logged once stderr is read again
            lines = (partial + (proc.stdout.read(1 << 20) or b"")).split(b"\n")
            partial = lines.pop()                # a line the next read completes
            notes += [line for line in lines if b"dropped" in line]
            time.sleep(0.1)
        assert seen(b"access lines dropped: stdout was not being read"), notes
        assert seen(b"log lines dropped: stderr was not being read"), notes
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
