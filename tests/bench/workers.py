#!/usr/bin/env python3
"""Workers and reload, measured in one run (issue: workers, reload):
  - requests/s of apps/hello with --workers 1 and 2, over ZeroMQ (lubeck-bench,
    window 100) and behind Mongrel2 (wrk -t1 -c50);
  - the time from saving app.lua to the first response from the new code
    (lubeck serve --reload, polled every millisecond), median of 10 saves.
Usage: /usr/bin/python3 tests/bench/workers.py [BUILD] [SECONDS]"""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
LUBECK = os.path.join(BUILD, "lubeck")
HELLO = os.path.join(ROOT, "apps", "hello")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def zmq_rps(workers):
    send, recv = "tcp://127.0.0.1:%d" % free_port(), "tcp://127.0.0.1:%d" % free_port()
    bench = subprocess.Popen([os.path.join(BUILD, "lubeck-bench"), "--send", send, "--recv", recv,
                              "--window", "100", "--duration", str(SECONDS)],
                             stdout=subprocess.PIPE, text=True)
    host = subprocess.Popen([LUBECK, "run", HELLO, "--send", send, "--recv", recv,
                             "--workers", str(workers)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    out = bench.communicate()[0]
    stop(host)
    return float(re.search(r"rps=(\d+)", out).group(1))


def serve(app, *args):
    port = free_port()
    run = tempfile.mkdtemp()
    proc = subprocess.Popen([LUBECK, "serve", app, "--port", str(port), "--run-dir", run] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "serving" in line:
            break
    # keep reading the access log: a full pipe would stop the host
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, port


def wrk_rps(workers):
    proc, port = serve(HELLO, "--workers", str(workers))
    out = subprocess.run(["wrk", "-t1", "-c50", "-d%ds" % SECONDS, "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True).stdout
    stop(proc)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def reload_latency():
    app = tempfile.mkdtemp()
    shutil.copy(os.path.join(HELLO, "app.lua"), app)
    source = open(os.path.join(app, "app.lua")).read()
    proc, port = serve(app, "--reload")
    url = "http://127.0.0.1:%d/" % port
    times = []
    for i in range(10):
        body = "version %d" % i
        tmp = os.path.join(app, "app.lua.tmp")
        with open(tmp, "w") as f:
            f.write(source.replace('"Hello from Lua"', '"%s"' % body))
        saved = time.time()
        os.rename(tmp, os.path.join(app, "app.lua"))
        while urllib.request.urlopen(url).read().decode() != body:
            time.sleep(0.001)
        times.append(time.time() - saved)
        time.sleep(0.2)
    stop(proc)
    return times


print("workers: %ds per measurement on %d CPUs" % (SECONDS, os.cpu_count()))
z1, z2 = zmq_rps(1), zmq_rps(2)
w1, w2 = wrk_rps(1), wrk_rps(2)
print("%-24s %12s %12s %8s" % ("", "--workers 1", "--workers 2", "ratio"))
print("%-24s %12.0f %12.0f %8.2f" % ("lubeck-bench rps", z1, z2, z2 / z1))
print("%-24s %12.0f %12.0f %8.2f" % ("wrk via Mongrel2 rps", w1, w2, w2 / w1))
t = reload_latency()
print("save → first new response: median %.1f ms, max %.1f ms (10 saves)" %
      (statistics.median(t) * 1000, max(t) * 1000))
