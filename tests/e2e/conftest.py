"""End-to-end harness: a real Mongrel2 (Debian's mongrel2-core) started by
`lubeck serve` on a free loopback port, driven over HTTP. Every process a test
starts is stopped when it ends."""
import http.client
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LUBECK_BUILD", os.path.join(ROOT, "build"))
LUBECK = os.path.join(BUILD, "lubeck")
APPS = os.path.join(ROOT, "tests", "e2e", "apps")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value), names as sent
        self.body = body

    def header(self, name):
        """All values of a header joined by ', ' (None when absent)."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def header_list(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def http_request(port, method, path, body=None, headers=None, timeout=10, version=None):
    """One request on a connection of its own to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if version == "HTTP/1.0":
        conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.reason, r.getheaders(), r.read())
    finally:
        conn.close()


class Process:
    """A command whose stdout and stderr are collected line by line."""

    def __init__(self, argv, env=None, cwd=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=cwd, start_new_session=True)
        self.out, self.err = [], []
        self._cv = threading.Condition()
        self._pumps = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            t = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            t.start()
            self._pumps.append(t)

    def _pump(self, stream, sink):
        for line in iter(stream.readline, b""):
            with self._cv:
                sink.append(line.decode("utf-8", "replace").rstrip("\n"))
                self._cv.notify_all()

    def wait_for(self, predicate, timeout=15, what="output"):
        deadline = time.time() + timeout
        with self._cv:
            while True:
                hit = predicate(self.out, self.err)
                if hit:
                    return hit
                left = deadline - time.time()
                if self.proc.poll() is not None and any(t.is_alive() for t in self._pumps):
                    # exited: what it wrote may still be on its way to the pumps
                    self._cv.wait(0.05)
                    continue
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("timed out waiting for %s\nstdout:\n%s\nstderr:\n%s" % (
                        what, "\n".join(self.out), "\n".join(self.err)))
                self._cv.wait(min(left, 0.1))

    def wait_line(self, needle, stream="out", timeout=15):
        def find(out, err):
            lines = out if stream == "out" else err
            return next((l for l in lines if needle in l), None)
        return self.wait_for(find, timeout, repr(needle))

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=15):
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


class Server:
    """`lubeck serve APP` on a free port, with its run folder in tmp_path."""

    def __init__(self, app, run_dir, args=()):
        self.port = free_port()
        self.app = app
        self.run_dir = str(run_dir)
        self.process = Process([LUBECK, "serve", app, "--port", str(self.port),
                                "--run-dir", self.run_dir] + list(args))
        self.process.wait_line("serving", timeout=20)

    def request(self, method, path, **kw):
        return http_request(self.port, method, path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def raw(self, data, timeout=5):
        """Sends raw bytes on a new connection; returns everything read until close
        or timeout."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
            except socket.timeout:
                pass
            return b"".join(chunks)

    @property
    def stdout(self):
        return self.process.out

    @property
    def stderr(self):
        return self.process.err

    def stop(self):
        return self.process.stop()


class Mongrel2:
    """A Mongrel2 of the test's own (for `lubeck run`): the config `lubeck m2conf`
    prints, moved to free ports and to run_dir. flow_control=False drops the
    download.flow_control setting, for tests that count on Mongrel2 rotating
    each request of one keep-alive connection over the hosts (with it, the
    credits notice after each reply takes a turn too)."""

    def __init__(self, app, run_dir, flow_control=True):
        self.run = str(run_dir)
        for d in ("logs", "run", "tmp"):
            os.makedirs(os.path.join(self.run, d), exist_ok=True)
        self.port, send, recv = free_port(), free_port(), free_port()
        self.send_spec = "tcp://127.0.0.1:%d" % send
        self.recv_spec = "tcp://127.0.0.1:%d" % recv
        conf = subprocess.run([LUBECK, "m2conf", app, "--port", str(self.port)],
                              capture_output=True, text=True, check=True).stdout
        conf = conf.replace("tcp://127.0.0.1:9997", self.send_spec)
        conf = conf.replace("tcp://127.0.0.1:9996", self.recv_spec)
        conf = conf.replace(os.path.join(os.path.realpath(app), ".lubeck"), self.run)
        if not flow_control:
            conf = conf.replace("'download.flow_control': 1", "'download.flow_control': 0")
        with open(os.path.join(self.run, "m2.conf"), "w") as f:
            f.write(conf)
        self.db = os.path.join(self.run, "config.sqlite")
        subprocess.run(["m2sh", "load", "-config", os.path.join(self.run, "m2.conf"), "-db", self.db],
                       check=True, capture_output=True, env=dict(os.environ, LOGNAME="lubeck"))
        self.uuid = conf.split("uuid='")[1].split("'")[0]
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["mongrel2", self.db, self.uuid], cwd="/",
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(self, path, timeout=3):
        return http_request(self.port, "GET", path, timeout=timeout)

    def wait_ok(self, path="/", timeout=20):
        """True once a GET of path answers 200 (both ZeroMQ links are up)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.get(path).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False


@pytest.fixture
def serve(tmp_path):
    """serve(app_name_or_path, *args) → a running Server; stopped at teardown."""
    started = []

    def start(app, *args):
        path = app if os.path.isabs(app) else os.path.join(APPS, app)
        if not os.path.isdir(path):
            path = os.path.join(ROOT, app)
        server = Server(path, tmp_path / ("run%d" % len(started)), args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
