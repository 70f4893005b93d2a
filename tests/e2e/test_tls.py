"""Cosocket TLS (sslhandshake) through a real Mongrel2, against TLS servers
the test runs on loopback with certificates it makes (valid, expired, for
another name, self-signed), and redis-server's tls-port for lubeck.redis (Debian's
resty.redis 0.27 has no ssl option: its connect ignores it). Each failure must name its cause. App: tests/e2e/apps/tls."""
import json
import os
import socket
import ssl
import threading

import pytest

from conftest import APPS, Server
from test_redis import REDIS_SERVER, Redis, free_port

cryptography = pytest.importorskip("cryptography")
import tlscerts  # noqa: E402  (needs cryptography)


class TLSEcho:
    """A TLS server: says whether the session was resumed, then echoes lines."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(5)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(b"reused=%s\n" % str(conn.session_reused).encode())
                f = conn.makefile("rb")
                for line in f:
                    conn.sendall(line)
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tlscerts.make(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def servers(certs):
    made = {kind: TLSEcho(*certs[kind]) for kind in ("valid", "expired", "wrong_name", "self_signed")}
    yield {kind: s.port for kind, s in made.items()}
    for s in made.values():
        s.close()


def start(tmp_path_factory, **env):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if v is not None})
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        return Server(os.path.join(APPS, "tls"), tmp_path_factory.mktemp("tls-run"))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def srv(certs, tmp_path_factory):
    """Trusts the test CA through lubeck.app{ tls = { ca = ... } }."""
    server = start(tmp_path_factory, LUBECK_TEST_CA=certs["ca"][0])
    yield server
    server.stop()


def jget(server, path):
    r = server.get(path)
    assert r.status == 200, (r.status, r.text, "\n".join(server.stderr[-12:]))
    return json.loads(r.body)


def test_a_valid_certificate(srv, servers):
    r = jget(srv, "/handshake?port=%d&name=localhost" % servers["valid"])
    assert r == {"hello": "reused=False", "echo": "ping", "session": "userdata"}


def test_an_ip_address_is_checked_against_the_certificate(srv, servers):
    r = jget(srv, "/handshake?port=%d&name=127.0.0.1" % servers["valid"])
    assert r["echo"] == "ping"


@pytest.mark.parametrize("kind,name,cause", [
    ("expired", "localhost", "certificate has expired"),
    ("wrong_name", "localhost", "hostname mismatch"),
    ("self_signed", "localhost", "self-signed certificate"),
])
def test_a_bad_certificate_names_its_cause(srv, servers, kind, name, cause):
    r = jget(srv, "/handshake?port=%d&name=%s" % (servers[kind], name))
    assert r["err"] == "handshake failed: certificate verify failed (%s)" % cause


def test_verify_false_accepts_what_verification_refuses(srv, servers):
    r = jget(srv, "/handshake?port=%d&name=localhost&verify=0" % servers["self_signed"])
    assert r["echo"] == "ping"


def test_a_session_is_reused(srv, servers):
    port = servers["valid"]
    first = jget(srv, "/handshake?port=%d&name=localhost&keep=s1" % port)
    assert first["hello"] == "reused=False"
    again = jget(srv, "/handshake?port=%d&name=localhost&reuse=s1" % port)
    assert again["hello"] == "reused=True"


def test_without_the_ca_the_system_store_refuses(servers, tmp_path_factory):
    server = start(tmp_path_factory, LUBECK_TEST_CA=None, SSL_CERT_FILE=None, SSL_CERT_DIR=None)
    try:
        r = jget(server, "/handshake?port=%d&name=localhost" % servers["valid"])
        assert r["err"] == ("handshake failed: certificate verify failed "
                            "(unable to get local issuer certificate)")
    finally:
        server.stop()


def test_ssl_cert_file_is_honoured(certs, servers, tmp_path_factory):
    server = start(tmp_path_factory, LUBECK_TEST_CA=None, SSL_CERT_FILE=certs["ca"][0])
    try:
        r = jget(server, "/handshake?port=%d&name=localhost" % servers["valid"])
        assert r["echo"] == "ping"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_redis(certs, tmp_path_factory):
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server not installed")
    tls_port = free_port()
    cert, key = certs["valid"]
    server = Redis(tmp_path_factory.mktemp("tls-redis"), "--tls-port", str(tls_port),
                   "--tls-cert-file", cert, "--tls-key-file", key,
                   "--tls-ca-cert-file", certs["ca"][0], "--tls-auth-clients", "no")
    server.tls_port = tls_port
    yield server
    server.stop()


def test_lubeck_redis_over_tls(srv, tls_redis):
    r = jget(srv, "/redis?port=%d" % tls_redis.tls_port)
    assert r == {"reused": 0, "set": "OK", "get": "v", "kept": 1}
    r = jget(srv, "/redis?port=%d" % tls_redis.tls_port)
    assert r["reused"] == 1 and r["get"] == "v"          # the TLS connection was pooled
    r = jget(srv, "/redis?port=%d&name=elsewhere.test" % tls_redis.tls_port)
    assert r["err"] == "handshake failed: certificate verify failed (hostname mismatch)"
