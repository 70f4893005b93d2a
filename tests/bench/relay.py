#!/usr/bin/env python3
"""What the relay's extra hop costs, measured in one run (docs/scaling.md):
one Mongrel2, apps/hello, wrk -t1 -c50 behind it, rows taken in turn each
round: 1 and 2 hosts connected directly (run --send/--recv), through a
relay (relay + run --relay; the hosts join over tcp://, and once over ipc://
as hosts on the relay's machine would), and one host with --workers 2 (its
master's reader in the bus process; compared with 2 direct hosts). Per row:
requests/s; CPU per request of the hosts, of the relay (or reader), of
Mongrel2, and their sum (the hop's whole cost is the difference of sums);
the relay rows also as a ratio to the direct row of the same round. Figures
are medians over the rounds. A second table does the same over
ZeroMQ alone (lubeck-bench plays Mongrel2, window 100): the hop's cost
without Mongrel2's share of the CPU.
Usage: /usr/bin/python3 tests/bench/relay.py [BUILD] [SECONDS] [ROUNDS]"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
os.environ["LUBECK_BUILD"] = BUILD
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
from conftest import LUBECK, Mongrel2, free_port  # noqa: E402
from hosts import Hosts, cpu, interleaved, stop  # noqa: E402

HELLO = os.path.join(ROOT, "apps", "hello")


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(c) for c in f.read().split()]


def run_wrk(m2):
    m2_before = cpu(m2.proc.pid)
    out = subprocess.run(["wrk", "-t1", "-c50", "-d%ds" % SECONDS, "http://127.0.0.1:%d/" % m2.port],
                         capture_output=True, text=True, timeout=SECONDS + 30).stdout
    return out, cpu(m2.proc.pid) - m2_before


def measure(m2, hosts, relay):
    """Starts the row's processes, waits until every host answers, runs wrk.
    relay "workers": one host with --workers N, its reader measured as the relay;
    "ipc": a relay whose hosts join over ipc://."""
    if relay == "workers":
        master = subprocess.Popen([LUBECK, "run", HELLO, "--send", m2.send_spec, "--recv", m2.recv_spec,
                                   "--workers", str(hosts)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            assert m2.wait_ok("/", 20)
            time.sleep(1.5)
            kids = sorted(children(master.pid))   # the bus (and reader) was forked first
            reader, workers = kids[0], kids[1:]
            before = [cpu(p) for p in workers]
            reader_before = cpu(reader)
            out, m2_cpu = run_wrk(m2)
            host_cpu = sum(cpu(p) - b for p, b in zip(workers, before))
            relay_cpu = cpu(reader) - reader_before
        finally:
            stop(master)
        return result(out, host_cpu, relay_cpu, m2_cpu)
    mode = {False: None, True: "tcp", "ipc": "ipc"}[relay]
    with Hosts(LUBECK, HELLO, m2, hosts, mode, m2.run) as row:
        assert m2.wait_ok("/", 20)
        time.sleep(1.5)   # every host joined (a relay's hosts say ready within a beat)
        host_before, relay_before = row.cpu()
        out, m2_cpu = run_wrk(m2)
        host_after, relay_after = row.cpu()
    return result(out, host_after - host_before, relay_after - relay_before, m2_cpu)


def result(out, host_cpu, relay_cpu, m2_cpu=0):
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "host_us": host_cpu / requests * 1e6, "relay_us": relay_cpu / requests * 1e6,
            "m2_us": m2_cpu / requests * 1e6, "errors": errors.group(0) if errors else ""}


class ZmqFront:
    """lubeck-bench in Mongrel2's place: binds the specs, sends for SECONDS."""

    def __init__(self):
        self.send_spec = "tcp://127.0.0.1:%d" % free_port()
        self.recv_spec = "tcp://127.0.0.1:%d" % free_port()


def zmq_measure(hosts, relay):
    front = ZmqFront()
    bench = subprocess.Popen([os.path.join(BUILD, "lubeck-bench"), "--send", front.send_spec, "--recv",
                              front.recv_spec, "--window", "100", "--duration", str(SECONDS + 2)],
                             stdout=subprocess.PIPE, text=True)
    with Hosts(LUBECK, HELLO, front, hosts, "tcp" if relay else None) as row:
        out = bench.communicate(timeout=SECONDS + 30)[0]
        host_cpu, relay_cpu = row.cpu()
    requests = int(re.search(r"requests=(\d+)", out).group(1))
    return {"rps": float(re.search(r"rps=(\d+)", out).group(1)), "host_us": host_cpu / requests * 1e6,
            "relay_us": relay_cpu / requests * 1e6, "m2_us": 0, "errors": ""}


def table(title, rows, results):
    print(title)
    print("%-10s %5s %8s %8s %10s %9s %9s %18s" % ("path", "hosts", "req/s", "host", "reader", "Mongrel2",
                                                 "sum", "req/s vs direct"))
    print("%-10s %5s %8s %8s %10s %9s %9s" % ("", "", "", "us/req", "us/req", "us/req", "us/req"))
    for row in rows:
        got = results[row]
        direct = results[("direct", row[1], False)]
        ratio = statistics.median(g["rps"] / d["rps"] for g, d in zip(got, direct))
        errors = "; ".join(g["errors"] for g in got if g["errors"])

        def med(key):
            return statistics.median(g[key] for g in got)
        total = statistics.median(g["host_us"] + g["relay_us"] + g["m2_us"] for g in got)
        print("%-10s %5d %8.0f %8.1f %10.1f %9.1f %9.1f %18.3f%s" % (
            row[0], row[1], med("rps"), med("host_us"), med("relay_us"), med("m2_us"), total,
            ratio, "  " + errors if errors else ""))


def main():
    run = tempfile.mkdtemp(prefix="lubeck-relay-bench.")
    m2 = Mongrel2(HELLO, run)
    rows = [("direct", 1, False), ("relay", 1, True), ("relay ipc", 1, "ipc"), ("direct", 2, False),
            ("relay", 2, True), ("workers", 2, "workers")]
    try:
        results = interleaved(rows, ROUNDS, lambda row: measure(m2, row[1], row[2]))
    finally:
        m2.stop()
    table("behind Mongrel2 (wrk -t1 -c50, %d s, %d rounds)" % (SECONDS, ROUNDS), rows, results)
    zrows = [("direct", 1, False), ("relay", 1, True)]
    zresults = interleaved(zrows, ROUNDS, lambda row: zmq_measure(row[1], row[2]))
    table("over ZeroMQ (lubeck-bench, window 100; the host's CPU includes its start)", zrows, zresults)


if __name__ == "__main__":
    main()
