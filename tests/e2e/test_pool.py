"""One pool across machines (docs/scaling.md): 2 Mongrel2 fronts x 2 hosts,
each in its own network namespace on one virtual switch, with `lubeck relay`
beside each Mongrel2 and the hosts joined by `run --relay`. Clients connect
to each Mongrel2 from inside its namespace. Needs root (ip netns); skipped
otherwise."""
import ctypes
import http.client
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import APPS, LUBECK, Process
from test_dispatch import Load, ws_frame
from test_websocket import WS

APP = os.path.join(APPS, "dispatch")
SUBNET = "10.77.%d." % (os.getpid() % 200 + 20)
FRONTS = {"f1": SUBNET + "1", "f2": SUBNET + "2"}
HOSTS = {"h1": SUBNET + "11", "h2": SUBNET + "12"}
HTTP_PORT, RELAY_PORT = 6767, 7000
CLONE_NEWNET = 0x40000000
TAG = "lbk%d" % os.getpid()

libc = ctypes.CDLL("libc.so.6", use_errno=True)


def ns(name):
    return TAG + name


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


def netns_available():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("mongrel2"):
        return False
    try:
        sh("ip", "netns", "add", ns("probe"))
        sh("ip", "netns", "del", ns("probe"))
        return True
    except (subprocess.CalledProcessError, OSError):
        return False


pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and ip netns")


def in_ns(name, fn, *args):
    """Runs fn(*args) in a thread that joined network namespace `name` (a
    thread's sockets are made in its namespace); returns its result."""
    out = {}

    def run():
        fd = os.open("/run/netns/" + ns(name), os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        try:
            out["value"] = fn(*args)
        except Exception as e:   # re-raised in the caller
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def get(front, path, timeout=5):
    def request():
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=timeout)
        try:
            conn.request("GET", path)
            res = conn.getresponse()
            return res.status, res.read().decode()
        finally:
            conn.close()
    return in_ns(front, request)


class Front:
    """Mongrel2 in its namespace (its request socket on loopback, read only by
    the relay beside it; its reply socket open to the switch) and the relay."""

    def __init__(self, name, addr, run_dir):
        self.name, self.addr, self.run = name, addr, str(run_dir)
        for d in ("logs", "run", "tmp"):
            os.makedirs(os.path.join(self.run, d), exist_ok=True)
        conf = subprocess.run([LUBECK, "m2conf", APP, "--port", str(HTTP_PORT)],
                              capture_output=True, text=True, check=True).stdout
        conf = conf.replace("tcp://127.0.0.1:9996", "tcp://0.0.0.0:9996")
        conf = conf.replace(os.path.join(os.path.realpath(APP), ".lubeck"), self.run)
        with open(os.path.join(self.run, "m2.conf"), "w") as f:
            f.write(conf)
        self.db = os.path.join(self.run, "config.sqlite")
        subprocess.run(["m2sh", "load", "-config", os.path.join(self.run, "m2.conf"), "-db", self.db],
                       check=True, capture_output=True, env=dict(os.environ, LOGNAME="lubeck"))
        uuid = conf.split("uuid='")[1].split("'")[0]
        self.m2 = subprocess.Popen(["ip", "netns", "exec", ns(name), "mongrel2", self.db, uuid], cwd="/",
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        # The relay names Mongrel2's reply socket as it reaches it (loopback);
        # each host reaches it at the relay's own address.
        self.relay = Process(["ip", "netns", "exec", ns(name), LUBECK, "relay",
                              "--send", "tcp://127.0.0.1:9997", "--recv", "tcp://127.0.0.1:9996",
                              "--listen", "tcp://%s:%d" % (addr, RELAY_PORT), "--timeout", "1.5"])

    def stop(self):
        self.relay.stop()
        if self.m2.poll() is None:
            self.m2.terminate()
            try:
                self.m2.wait(10)
            except subprocess.TimeoutExpired:
                self.m2.kill()
                self.m2.wait()


def start_host(name):
    relays = []
    for addr in FRONTS.values():
        relays += ["--relay", "tcp://%s:%d" % (addr, RELAY_PORT)]
    return Process(["ip", "netns", "exec", ns(name), LUBECK, "run", APP, "--drain", "5"] + relays)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    made = []
    try:
        sh("ip", "netns", "add", ns("sw"))
        made.append("sw")
        sh("ip", "netns", "exec", ns("sw"), "ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "netns", "exec", ns("sw"), "ip", "link", "set", "br0", "up")
        for name, addr in list(FRONTS.items()) + list(HOSTS.items()):
            sh("ip", "netns", "add", ns(name))
            made.append(name)
            sh("ip", "link", "add", "v" + TAG + name, "type", "veth", "peer", "name", "e" + TAG + name)
            sh("ip", "link", "set", "v" + TAG + name, "netns", ns("sw"))
            sh("ip", "link", "set", "e" + TAG + name, "netns", ns(name))
            sh("ip", "netns", "exec", ns("sw"), "ip", "link", "set", "v" + TAG + name, "master", "br0", "up")
            sh("ip", "netns", "exec", ns(name), "ip", "link", "set", "e" + TAG + name, "name", "eth0")
            sh("ip", "netns", "exec", ns(name), "ip", "addr", "add", addr + "/24", "dev", "eth0")
            sh("ip", "netns", "exec", ns(name), "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns(name), "ip", "link", "set", "lo", "up")
        tmp = tmp_path_factory.mktemp("pool")
        fronts = {name: Front(name, addr, tmp / name) for name, addr in FRONTS.items()}
        hosts = {name: start_host(name) for name in HOSTS}
        p = {"fronts": fronts, "hosts": hosts}
        for front in fronts.values():   # both hosts joined each relay
            front.relay.wait_for(lambda out, err: sum("joined" in line for line in err) >= 2, timeout=20)
        yield p
        for h in p["hosts"].values():
            h.stop()
        for f in fronts.values():
            f.stop()
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", ns(name)], capture_output=True)


def pids_seen(front, n=12):
    return {get(front, "/pid")[1] for _ in range(n)}


def test_plain_requests_from_each_front_are_split_over_both_hosts(pool):
    for front in FRONTS:
        assert len(pids_seen(front)) == 2


def test_websocket_frames_reach_their_host_in_order(pool):
    for front in FRONTS:
        socks = in_ns(front, lambda: [WS(HTTP_PORT, "/order") for _ in range(4)])
        for ws in socks:
            ws.sock.sendall(b"".join(ws_frame(str(i)) for i in range(1, 301)))
            ws.send_text("end")
        answers = [ws.recv_text().split() for ws in socks]
        assert [(a[0], a[1]) for a in answers] == [("300", "0")] * 4
        assert len({a[2] for a in answers}) == 2   # sessions on both hosts
        for ws in socks:
            ws.close()


def test_a_closed_long_poll_is_learned_by_the_host_holding_it(pool):
    import socket
    delays = []
    for i in range(6):
        front = "f1" if i % 2 == 0 else "f2"
        s = in_ns(front, socket.create_connection, ("127.0.0.1", HTTP_PORT), 5)
        s.sendall(b"GET /park?t=pool%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i)
        time.sleep(0.3)
        closed_at = time.time()
        s.close()
        at, deadline = None, time.time() + 3
        while at is None and time.time() < deadline:   # (asks both hosts in turn)
            at = json.loads(get(front, "/learned?t=pool%d" % i)[1]).get("at")
        assert at is not None, "the host holding poll %d never learned of the close" % i
        delays.append(at - closed_at)
    # Every close reached the host holding the poll (without the relay, half of
    # them land on the other host and are never learned). The time includes
    # Mongrel2 noticing the close, which on this shared machine now and then
    # takes ~100 ms by itself; the relay-to-host hop measured well under 1 ms.
    assert all(d < 0.5 for d in delays), delays
    assert sorted(delays)[3] < 0.1, delays


class FrontLoad(Load):
    """Counted clients (test_dispatch.Load) inside a front's namespace."""

    def __init__(self, front, path, clients=4, timeout=8):
        super().__init__(HTTP_PORT, path, clients, timeout)
        self.front = front

    def _enter(self):
        fd = os.open("/run/netns/" + ns(self.front), os.O_RDONLY)
        libc.setns(fd, CLONE_NEWNET)
        os.close(fd)


def joined(front):
    return sum("joined" in line for line in front.relay.err)


def test_hosts_leave_and_join_four_times_under_load_with_nothing_lost(pool):
    loads = [FrontLoad(front, "/slow?s=0.05").start() for front in FRONTS]
    for cycle in range(4):
        name = "h1" if cycle % 2 == 0 else "h2"
        time.sleep(0.5)
        joins = {f: joined(front) for f, front in pool["fronts"].items()}
        pool["hosts"][name].stop()   # SIGTERM: leaves, drains, exits
        time.sleep(0.3)
        pool["hosts"][name] = start_host(name)
        for f, front in pool["fronts"].items():   # joined again
            front.relay.wait_for(lambda out, err: joined(front) > joins[f], timeout=20)
    records = [r for load in loads for r in load.finish(after=0.5)]
    statuses = [s for _, _, s in records]
    assert len(statuses) > 100
    assert all(s == 200 for s in statuses), [s for s in statuses if s != 200][:10]


def test_a_killed_hosts_clients_are_answered_502_by_the_relays(pool):
    joins = {name: joined(f) for name, f in pool["fronts"].items()}
    loads = [FrontLoad(front, "/slow?s=0.3").start() for front in FRONTS]
    time.sleep(1)
    killed_at = time.time()
    pool["hosts"]["h1"].proc.kill()   # kill -9: no leave, no goodbye
    pool["hosts"]["h1"].proc.wait()
    records = [r for load in loads for r in load.finish(after=2)]
    pool["hosts"]["h1"] = start_host("h1")
    failed = [(ended - killed_at, status) for _, ended, status in records if status != 200]
    assert failed, "h1 held nothing?"
    # Each relay sees the host's connection close and answers what it held at
    # once: sooner than its --timeout (1.5 s here) for a silent host, and
    # nobody waits for Mongrel2's reaper.
    assert all(status == 502 and at < 1.4 for at, status in failed), failed
    for name, front in pool["fronts"].items():
        front.relay.wait_for(lambda out, err: joined(front) > joins[name], timeout=20)


def test_a_host_whose_link_is_cut_stops_failing_requests_within_3s(pool):
    load = FrontLoad("f1", "/slow?s=0.05", clients=6, timeout=6).start()
    time.sleep(1)
    cut_at = time.time()
    sh("ip", "netns", "exec", ns("sw"), "ip", "link", "set", "v" + TAG + "h2", "down")
    try:
        time.sleep(5)
        records = load.finish(after=0.5)
    finally:
        sh("ip", "netns", "exec", ns("sw"), "ip", "link", "set", "v" + TAG + "h2", "up")
    failed = [(started, status) for started, _, status in records if status != 200]
    late = [(started - cut_at, status) for started, status in failed if started - cut_at > 3]
    assert not late, late
    after = [s for started, _, s in records if started - cut_at > 3]
    assert after and all(s == 200 for s in after)
    # What h2 held was answered by the relay (502), not left to hang.
    assert all(status == 502 for _, status in failed), failed
