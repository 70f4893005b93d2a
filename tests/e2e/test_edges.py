"""A host at its edges, through a real Mongrel2 and hosts connected straight to
it (`lubeck run`): a Mongrel2 that restarts while requests and WebSocket
sessions are in flight, a stop under load, Ctrl-C of `lubeck serve` with a
parked long poll, a host that goes silent (heartbeats), and JSON bodies that
are not UTF-8. Every client here counts each request it sent and whether it
was answered."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPS, LUBECK, ROOT, Mongrel2, Process, Server, http_request

APP = os.path.join(APPS, "edges")


def run_host(m2, *args):
    """`lubeck run` connected straight to m2; returns once it answers."""
    return Process([LUBECK, "run", APP, "--send", m2.send_spec, "--recv", m2.recv_spec] +
                   list(args))


def stop_all(*procs):
    for p in procs:
        if p.proc.poll() is None:
            os.killpg(p.proc.pid, signal.SIGCONT)
        p.stop()


def wait_listening(port, timeout=20):
    """Waits until Mongrel2 accepts on port, without sending a request."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("mongrel2 never listened on %d" % port)


def read_some(sock, wait):
    """Whatever arrives on sock within wait seconds (b"" when nothing)."""
    sock.settimeout(wait)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return b""
    except OSError:
        return b""


def read_response(sock, what, timeout=5):
    """One HTTP response from sock: (status, body, bytes that came after it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before an answer to %s" % what
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the body of %s" % what
        body += chunk
    return int(head.split()[1]), body[:length], body[length:]


def http_on(sock, path, timeout=5):
    """One GET on an open keep-alive connection: (status, body); a second
    answer that came with the first fails."""
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: edges\r\n\r\n")
    status, body, extra = read_response(sock, path, timeout)
    assert not extra, "more than one answer to %s: %r" % (path, body + extra)
    return status, body


@pytest.fixture
def mongrel2(tmp_path):
    started = []

    def start():
        m2 = Mongrel2(APP, tmp_path / ("m2-%d" % len(started)))
        started.append(m2)
        return m2

    yield start
    for m2 in started:
        m2.stop()


# ---- 1. a Mongrel2 restart: nothing received before it is answered after it ----

SLOW = 4      # seconds the old requests sleep: Mongrel2 restarts meanwhile


def test_restart_of_mongrel2_ends_what_it_had_sent(mongrel2):
    from test_websocket import WS
    m2 = mongrel2()
    host = run_host(m2)
    try:
        assert m2.wait_ok("/who"), "\n".join(host.err)
        ws = WS(m2.port, "/ws")
        assert ws.status == 101
        ws.send_text("hi")
        assert ws.recv_text() == "echo hi"
        old = []
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", m2.port), timeout=5)
            s.sendall(b"GET /slow?wait=%d HTTP/1.1\r\nHost: edges\r\n\r\n" % SLOW)
            old.append(s)
        time.sleep(0.5)                  # all ten are sleeping in the host by now
        m2.proc.kill()                   # kill -9: no notice of any kind
        m2.proc.wait()
        slow_end = time.time() + SLOW - 0.5   # when the old replies would go out
        for s in old:
            s.close()
        m2.start()
        wait_listening(m2.port)
        # New clients, numbered from the same counter by the restarted Mongrel2,
        # each waiting for its own answer when the old replies go out.
        new = [socket.create_connection(("127.0.0.1", m2.port), timeout=10) for _ in range(20)]
        assert time.time() < slow_end - 1, "the restart took too long for this test to show anything"
        for i, s in enumerate(new):
            s.sendall(b"GET /slow?wait=%g&n=%d HTTP/1.1\r\nHost: edges\r\n\r\n" %
                      (slow_end - time.time() + 1, i))
        crossed = []
        for i, s in enumerate(new):
            status, body, extra = read_response(s, "/slow", timeout=10)
            if json.loads(body).get("n") != str(i) or extra:
                crossed.append(body + extra)
        assert not crossed, "%d of %d new clients got a reply meant for an old one: %r" % (
            len(crossed), len(new), crossed[:2])
        # The old WebSocket session ended; a broadcast reaches no new client.
        deadline = time.time() + 10
        while True:
            status, body = http_on(new[0], "/sessions")
            sessions = json.loads(body)
            if sessions["open"] == 0 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert sessions["open"] == 0 and sessions["ended"] == 1, sessions
        status, body = http_on(new[1], "/broadcast")
        assert json.loads(body)["sent"] == 0
        assert not [s for s in new[2:] if read_some(s, 0.05)], "a broadcast reached a new client"
        # Every new client is in step: its own answer to its own request.
        for i, s in enumerate(new[2:]):
            status, body = http_on(s, "/who?n=%d" % i)
            assert status == 200 and json.loads(body)["n"] == str(i), (i, body)
        for s in new:
            s.close()
        host.wait_line("dropped", stream="err", timeout=5)
        ws.sock.close()
    finally:
        stop_all(host)


# ---- 8. JSON bodies are UTF-8 (RFC 8259) ----------------------------------------

BAD_UTF8 = [b'"\xff\xfe"', b'{"a": "\xc0\xaf"}', b'["\xed\xa0\x80"]', b'"\x80"', b'"\xf4\x90\x80\x80"']
NOT_JSON = [b"nan", b"[Infinity]", b"0x10", b"01", b'"\\ud800"', b"{}x", b"{bad"]


def test_json_that_is_not_utf8_is_400_everywhere(serve):
    s = serve(APP)
    json_type = {"Content-Type": "application/json"}
    for path in ("/json", "/api", "/validate"):
        for body in BAD_UTF8 + NOT_JSON:
            r = s.post(path, body=body, headers=json_type)
            assert r.status == 400, (path, body, r.status, r.body)
            r.body.decode("utf-8")       # the answer itself is UTF-8
            if path != "/validate":
                assert "invalid JSON" in json.loads(r.body)["error"], (path, body, r.body)
    ok = s.post("/json", body='{"a": "\u2713"}'.encode(), headers=json_type)
    assert ok.status == 200 and json.loads(ok.body) == {"value": {"a": "\u2713"}}
    note = s.post("/validate", body=b'{"text": "caf\xc3\xa9"}', headers=json_type)
    assert note.status == 200 and json.loads(note.body)["text"] == "caf\u00e9"


# ---- 3. stop: drain first, then let go ---------------------------------------------

class CountingClient:
    """Threads that send requests one after another on a keep-alive connection
    each (a new one after a close: one request per connection would send every
    request to the same host, the disconnect notices to the other), and note
    for every request when it was sent and what came back: a status (with
    Retry-After for 503) or "none" when nothing came within the timeout. After
    a 503 a thread waits as Retry-After says, as a polite client does."""

    def __init__(self, port, paths, threads=4, seconds=6.0, limit=4000, timeout=4,
                 honour_retry_after=True):
        self.port, self.paths, self.timeout = port, paths, timeout
        self.honour_retry_after = honour_retry_after
        self.results = []                # (sent_at, status or "none", retry_after, pid)
        self.lock = threading.Lock()
        self.stop_at = time.time() + seconds
        self.limit = limit
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self, k):
        i = 0
        conn = None
        while time.time() < self.stop_at and len(self.results) < self.limit:
            path = self.paths[(i + k) % len(self.paths)]
            i += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            sent = time.time()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                pid = json.loads(body).get("pid") if r.status == 200 else None
                row = (sent, r.status, r.getheader("Retry-After"), pid)
                if r.status == 503 and self.honour_retry_after:
                    time.sleep(min(float(row[2] or 0), max(0, self.stop_at - time.time())))
                if r.will_close:
                    conn.close()
                    conn = None
            except (socket.timeout, TimeoutError):
                row = (sent, "none", None, None)
                conn.close()
                conn = None
            except (OSError, http.client.HTTPException) as e:
                row = (sent, "error: %r" % e, None, None)
                conn.close()
                conn = None
            with self.lock:
                self.results.append(row)
        if conn:
            conn.close()

    def join(self):
        for t in self.threads:
            t.join(self.timeout + 10)
        return self.results


def wait_for_pids(m2, n, timeout=20):
    """Waits until n different hosts answer (on one keep-alive connection)."""
    pids, deadline = set(), time.time() + timeout
    while len(pids) < n and time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", m2.port), timeout=2) as s:
                for _ in range(4):
                    pids.add(json.loads(http_on(s, "/who")[1])["pid"])
        except (OSError, ValueError, AssertionError):
            time.sleep(0.1)
    assert len(pids) >= n, pids
    return pids


def test_rolling_restart_of_direct_hosts_under_load(mongrel2):
    """Two hosts straight on one Mongrel2; each is stopped (SIGTERM) and started
    again in turn while a client keeps sending. Requests that reach a stopping
    host are answered: by the app while they were in flight, 503 with
    Retry-After when they arrived during the drain. What a direct host cannot
    close is the moment between its last read and letting go: counted here."""
    m2 = mongrel2()
    hosts = [run_host(m2, "--drain", "5"), run_host(m2, "--drain", "5")]
    try:
        wait_for_pids(m2, 2)
        client = CountingClient(m2.port, ["/who", "/who", "/who", "/slow?wait=0.3"], threads=64,
                                seconds=7)
        stops = []
        for k in (0, 1, 0):
            time.sleep(1.5)
            stopped = time.time()
            hosts[k].signal(signal.SIGTERM)
            assert hosts[k].proc.wait(10) == 0, "\n".join(hosts[k].err)
            stops.append((stopped, time.time()))
            assert "finishing" in "\n".join(hosts[k].err)
            hosts[k] = run_host(m2, "--drain", "5")
        results = client.join()
    finally:
        stop_all(*hosts)
    by_status = {}
    for _, status, _, _ in results:
        by_status[status] = by_status.get(status, 0) + 1
    lost = [r for r in results if r[1] == "none"]
    print("\nrolling restart, 3 stops of a direct host: %d requests, %r; lost in the "
          "window: %d" % (len(results), by_status, len(lost)))
    for r in lost:
        print("  lost: sent %s" % ", ".join("%+.3fs from stop %d (exit %+.3fs)" % (
            r[0] - a, i, b - a) for i, (a, b) in enumerate(stops) if abs(r[0] - a) < 3))
    assert len(results) > 200
    assert set(by_status) <= {200, 503, "none"}, by_status
    assert all(ra == "1" for _, status, ra, _ in results if status == 503)
    # Whatever was not lost was answered; the window is a few requests per stop.
    assert len(lost) <= 3 * len(stops), (len(lost), by_status)


def test_stop_answers_what_arrives_during_the_drain(mongrel2):
    """One host alone: requests in flight at SIGTERM finish, a parked long poll
    is woken (nil, "closing") and answers, and every request that arrives
    during the drain gets 503 with Retry-After at once instead of waiting in
    Mongrel2 for a host that is leaving."""
    m2 = mongrel2()
    host = run_host(m2, "--drain", "5")
    try:
        assert m2.wait_ok("/who"), "\n".join(host.err)
        answers = {}

        def ask(name, path):
            try:
                r = http_request(m2.port, "GET", path, timeout=8)
                answers[name] = (r.status, json.loads(r.body), time.time())
            except OSError as e:
                answers[name] = ("none", repr(e), time.time())

        slow = [threading.Thread(target=ask, args=("slow%d" % i, "/slow?wait=1.5")) for i in range(3)]
        poll = threading.Thread(target=ask, args=("poll", "/poll"))
        for t in slow + [poll]:
            t.start()
        time.sleep(0.4)                  # all four are waiting in the host
        stopped = time.time()
        host.signal(signal.SIGTERM)
        during = CountingClient(m2.port, ["/who"], threads=2, seconds=0.8, timeout=4,
                                honour_retry_after=False)
        results = during.join()
        for t in slow + [poll]:
            t.join(10)
        assert host.proc.wait(10) == 0, "\n".join(host.err)
    finally:
        stop_all(host)
    status, body, at = answers["poll"]
    assert status == 200 and body["err"] == "closing", answers["poll"]
    assert at - stopped < 1, "the long poll was answered %.2fs after the stop" % (at - stopped)
    for i in range(3):
        status, body, _ = answers["slow%d" % i]
        assert status == 200 and body["slept"] is True, answers["slow%d" % i]
    assert len(results) >= 4, results
    hung = [r for r in results if r[1] != 503]
    assert not hung, "during the drain: %r" % hung
    assert all(ra == "1" for _, _, ra, _ in results)


def test_ctrl_c_of_serve_with_a_parked_long_poll(serve):
    """apps/chat with a page open (its long poll parked on the channel): Ctrl-C
    answers the poll and serve is gone within 2 s."""
    s = serve(os.path.join(ROOT, "apps", "chat"))
    answer = {}

    def poll():
        try:
            r = s.get("/poll?since=0", timeout=15)
            answer["status"] = r.status
        except OSError as e:
            answer["status"] = repr(e)
        answer["at"] = time.time()

    t = threading.Thread(target=poll)
    t.start()
    deadline = time.time() + 5
    while json.loads(s.get("/stats").body)["listening"] < 1:
        assert time.time() < deadline, "the poll never parked"
        time.sleep(0.05)
    pressed = time.time()
    s.process.signal(signal.SIGINT)
    try:
        code = s.process.proc.wait(5)
    except subprocess.TimeoutExpired:
        code = "still running"
    gone = time.time() - pressed
    t.join(10)
    assert code == 0, (code, "\n".join(s.stderr))
    print("\nCtrl-C of serve apps/chat with a parked poll: gone in %.2fs, the poll answered %s" % (
        gone, answer.get("status")))
    assert gone < 2, "serve took %.1fs to stop" % gone
    assert answer.get("status") == 204, answer     # the poller was answered: poll again
    assert answer["at"] - pressed < 2


# ---- 15.1 a host that goes silent leaves the pool in seconds ------------------------

def test_a_stopped_host_leaves_the_pool_within_seconds(mongrel2):
    """Two hosts straight on one Mongrel2 under load; one is frozen (SIGSTOP).
    Its ZeroMQ heartbeats stop, the TTL they carried (3 s by default) runs out
    on Mongrel2's side, which drops it: every request sent from then on is
    answered by the other host. What Mongrel2 had already pushed to the frozen
    one is counted as lost."""
    m2 = mongrel2()
    frozen = run_host(m2)                         # the default: 1 s interval, 3 s TTL
    other = run_host(m2, "--heartbeat", "1")
    try:
        pids = wait_for_pids(m2, 2)
        frozen_pid = frozen.proc.pid
        assert frozen_pid in pids
        client = CountingClient(m2.port, ["/who"], threads=6, seconds=9, timeout=4, limit=100000)
        # Beside the load, one request every 0.1 s on a thread of its own: when
        # did the last one go unanswered?
        probes = []

        def probe():
            sent = time.time()
            try:
                r = http_request(m2.port, "GET", "/who", timeout=6)
                probes.append((sent, r.status, json.loads(r.body)["pid"]))
            except OSError:
                probes.append((sent, "none", None))

        probe_threads = []
        for i in range(80):
            if i == 10:
                stopped = time.time()
                os.kill(frozen_pid, signal.SIGSTOP)
            probe_threads.append(threading.Thread(target=probe))
            probe_threads[-1].start()
            time.sleep(0.1)
        results = client.join()
        for t in probe_threads:
            t.join(10)
    finally:
        if frozen.proc.poll() is None:
            os.kill(frozen.proc.pid, signal.SIGCONT)
        stop_all(frozen, other)
    after = [r for r in results if r[0] >= stopped + 3.5]
    lost = [r for r in results if r[1] != 200]
    last_lost = max([r[0] for r in lost] or [stopped]) - stopped
    unanswered = [p[0] - stopped for p in probes if p[1] != 200 or p[2] == frozen_pid]
    left_after = max(unanswered or [0])
    print("\nprobes: %d of %d unanswered, the last sent %.2fs after the stop" % (
        len(unanswered), len(probes), left_after))
    print("\nSIGSTOP of one of two hosts: %d requests, %d unanswered (pushed to the frozen "
          "one before it was dropped), the last of them sent %.2fs after the stop; %d sent "
          "after 3.5s, all answered by the other host: %s" % (
              len(results), len(lost), last_lost, len(after),
              all(r[1] == 200 and r[3] != frozen_pid for r in after)))
    assert len(after) >= 20, "too few requests after the TTL to tell: %d" % len(after)
    assert all(r[1] == 200 and r[3] != frozen_pid for r in after), \
        [r for r in after if r[1] != 200 or r[3] == frozen_pid][:5]
    assert all(r[1] == 200 for r in results if r[0] < stopped - 0.5)
    assert len(probes) == 80
    assert left_after < 4, "the frozen host was still routed to %.1fs after the stop" % left_after


def test_heartbeat_option_is_checked():
    for bad in ("-1", "x", "0.001"):
        p = Process([LUBECK, "run", APP, "--send", "tcp://127.0.0.1:1", "--recv",
                     "tcp://127.0.0.1:2", "--heartbeat", bad])
        assert p.proc.wait(10) == 2
        p.wait_line("bad --heartbeat", stream="err")
