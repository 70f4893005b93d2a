"""lubeck.ngx: Debian's lua-nginx-* libraries (OpenResty's lua-resty-*),
unmodified, inside lubeck handlers through a real Mongrel2, against servers
the test starts: redis-server, memcached, dnsmasq, and the app's own WebSocket
route. The libraries are taken from their .deb files (apt-get download +
dpkg -x, cached in the build folder): installing them would pull in
nginx-extras and OpenResty's LuaJIT, which replaces the one lubeck builds
with. App: tests/e2e/apps/ngx."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import APPS, BUILD, Server, free_port
from test_redis import REDIS_SERVER, Redis

NGX_DEBS = ["lua-nginx-redis", "lua-nginx-memcached", "lua-nginx-websocket", "lua-nginx-dns",
            "lua-nginx-string"]
MEMCACHED = "/usr/bin/memcached"
DNSMASQ = "/usr/sbin/dnsmasq"


def ngx_libs():
    """The folder holding nginx/*.lua from the Debian packages (fetched once)."""
    cache = os.path.join(BUILD, "ngx-libs")
    lua_dir = os.path.join(cache, "root", "usr", "share", "lua", "5.1")
    if all(os.path.exists(os.path.join(cache, "debs", ".%s.ok" % d)) for d in NGX_DEBS):
        return lua_dir
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    for name in NGX_DEBS:
        got = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        if got.returncode != 0:
            pytest.skip("cannot download %s: %s" % (name, got.stderr.strip()[-200:]))
        deb = next(f for f in os.listdir(debs) if f.startswith(name + "_") and f.endswith(".deb"))
        subprocess.run(["dpkg", "-x", os.path.join(debs, deb), os.path.join(cache, "root")],
                       check=True)
        open(os.path.join(debs, ".%s.ok" % name), "w").close()
    return lua_dir


def wait_port(port, proc, what):
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s exited" % what)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s did not start on %d" % (what, port))


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    lua_dir = ngx_libs()
    old = os.environ.get("LUA_PATH")
    os.environ["LUA_PATH"] = lua_dir + "/?.lua;;"
    try:
        server = Server(os.path.join(APPS, "ngx"), tmp_path_factory.mktemp("ngx-run"))
    finally:
        if old is None:
            del os.environ["LUA_PATH"]
        else:
            os.environ["LUA_PATH"] = old
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server not installed")
    tmp = tmp_path_factory.mktemp("redis")
    server = Redis(tmp, "--unixsocket", str(tmp / "redis.sock"))
    server.unix = str(tmp / "redis.sock")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def memcached():
    if not os.path.exists(MEMCACHED):
        pytest.skip("memcached not installed")
    port = free_port()
    proc = subprocess.Popen([MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, proc, "memcached")
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq not installed")
    tmp = tmp_path_factory.mktemp("dns")
    hosts = tmp / "hosts"
    hosts.write_text("127.0.0.42 app.lubeck.test\n")
    port = free_port()
    # Answers only from the hosts file: no upstream, no /etc/hosts, loopback only.
    proc = subprocess.Popen([DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                             "--addn-hosts=%s" % hosts, "--listen-address=127.0.0.1",
                             "--bind-interfaces", "--port=%d" % port, "--local=/lubeck.test/",
                             "--user=root", "--pid-file=%s" % (tmp / "pid"), "--log-facility=-"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, proc, "dnsmasq")
        yield port
    finally:
        stop(proc)


def jget(server, path, status=200):
    r = server.get(path)
    assert r.status == status, (r.status, r.text, "\n".join(server.stderr[-12:]))
    return json.loads(r.body)


def test_resty_redis_runs_unmodified(srv, redis_server):
    r = jget(srv, "/redis?port=%d" % redis_server.port)
    assert r["set"] == "OK" and r["get"] == "an animal" and r["missing"] is True
    assert r["hmset"] == "OK" and r["hget"] == "meow"
    assert r["pipeline"] == ["OK", "OK", "Marry", "Bob"]
    assert r["incr"] is False and r["incr_err"].startswith("ERR value is not an integer")
    assert r["kept"] == 1
    again = jget(srv, "/redis?port=%d" % redis_server.port)
    assert again["reused"] >= 1                        # set_keepalive pooled it


def test_resty_redis_over_a_unix_socket(srv, redis_server):
    assert jget(srv, "/redis_unix?path=%s" % redis_server.unix) == {"pong": "PONG"}


def test_both_package_names_load_the_same_library(srv):
    assert jget(srv, "/redis_debian_name") == {"same": True}


def test_resty_redis_pubsub(srv, redis_server):
    r = jget(srv, "/redis_pubsub?port=%d" % redis_server.port)
    assert r["subscribed"] == ["subscribe", "news", 1]
    assert r["published"] == 1
    assert r["message"] == ["message", "news", "hello"]


def test_resty_memcached_runs_unmodified(srv, memcached):
    r = jget(srv, "/memcached?port=%d" % memcached)
    assert r["flush"] == 1 and r["set"] == 1
    assert r["value"] == "32" and r["flags"] == "0"
    assert r["add_again"] == "NOT_STORED"
    assert r["incr"] == "42" and r["missing"] is True and r["kept"] == 1


def test_resty_websocket_client_against_lubecks_own_route(srv):
    r = jget(srv, "/websocket?port=%d" % srv.port)
    assert r["sent"] == 11                               # the masked frame's bytes
    assert r["data"] == "echo: hello" and r["type"] == "text"
    assert r["pong"] == "pong:p"
    assert r["closed"] > 0


def test_resty_dns_over_udp_and_tcp(srv, dnsmasq):
    r = jget(srv, "/dns?port=%d" % dnsmasq)
    assert r["udp"] == "127.0.0.42"
    assert r["tcp"] == "127.0.0.42"
    assert r["nxdomain"] == 3


def test_resty_string(srv):
    r = jget(srv, "/string")
    assert r["sha1"] == "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
    assert r["md5"] == "5d41402abc4b2a76b9719d911017c592"


def test_the_ngx_table(srv):
    r = jget(srv, "/ngx")
    assert r["match"] == ["2026-12-04", "2026", "12", "2026"]
    assert r["find"] == [8, 9]
    assert r["words"] == ["one", "two", "three"]
    assert r["gsub"] == ["a<1>b<22>c<333>", 3]
    assert r["fsub"] == "heLLo"
    assert r["tsub"] == "[a$] [b$]"
    assert r.get("bad") is None and "pcre2_compile() failed" in r["err"]
    assert r["md5"] == "900150983cd24fb0d6963f7d28e17f72"
    assert r["sha1"] == "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
    assert r["hmac"] == "3nybhbi3iqa8ino29wqQcBydtNk="
    assert r["b64"] == "aGk/" and r["unb64"] == "hi?" and r.get("notb64") is None
    assert r["crc"] == 907060870
    assert r["phase"] == "content" and r["pid"] is True and r["null"] is True
    assert r["escaped"] == "a%20b%2Fc" and r["time"] is True
    assert "ngx.say is not offered" in r["say"]
