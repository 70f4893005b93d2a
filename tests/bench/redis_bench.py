#!/usr/bin/python3
"""One Redis GET per request through a real Mongrel2 (report only, no pass/fail):
  lubeck      lubeck.redis, pooled connection
  resty       Debian's lua-resty-redis (unmodified, through lubeck.ngx), pooled
  plain_new   lubeck.redis, a new plain connection per request
  tls_new     lubeck.redis, a new TLS connection per request (handshake + GET)
  tls_pooled  lubeck.redis over TLS, pooled
Starts its own redis-server (plain and TLS ports, certificates made on the spot)
and `lubeck serve tests/bench/apps/redis`; wrk drives each route for --seconds.

usage: tests/bench/redis_bench.py [--build build] [--seconds 5] [--connections 20] [--rounds 1]
prints one line of requests/s per route (the median over the rounds).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import pathlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

ROUTES = ["lubeck", "resty", "plain_new", "tls_new", "tls_pooled"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    os.environ["LUBECK_BUILD"] = os.path.abspath(args.build)

    import tlscerts
    from conftest import Server, free_port
    from test_ngx import ngx_libs
    from test_redis import Redis

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="lubeck-redis-bench."))
    certs = tlscerts.make(tmp)
    tls_port = free_port()
    cert, key = certs["valid"]
    redis = Redis(tmp, "--tls-port", str(tls_port), "--tls-cert-file", cert, "--tls-key-file", key,
                  "--tls-ca-cert-file", certs["ca"][0], "--tls-auth-clients", "no")
    server = None
    try:
        redis.command("SET", "bench:k", "v" * 100)
        os.environ.update(LUBECK_BENCH_REDIS_PORT=str(redis.port),
                          LUBECK_BENCH_REDIS_TLS_PORT=str(tls_port),
                          LUBECK_BENCH_CA=certs["ca"][0], LUA_PATH=ngx_libs() + "/?.lua;;")
        server = Server(os.path.join(ROOT, "tests", "bench", "apps", "redis"), tmp / "run")
        results = {r: [] for r in ROUTES}
        for _ in range(args.rounds):
            for route in ROUTES:
                check = server.get("/" + route)
                if check.status != 200:
                    sys.exit("/%s answered %d: %s" % (route, check.status, check.text))
                out = subprocess.run(["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.seconds,
                                      "http://127.0.0.1:%d/%s" % (server.port, route)],
                                     capture_output=True, text=True, check=True).stdout
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                if bad:
                    sys.exit("/%s: %s non-2xx responses\n%s" % (route, bad.group(1),
                                                               "\n".join(server.stderr[-5:])))
                results[route].append(rps)
        print(" ".join("%s_rps=%.0f" % (r, statistics.median(v)) for r, v in results.items()))
    finally:
        if server:
            server.stop()
        redis.stop()


if __name__ == "__main__":
    main()
