"""What the benchmarks of hosts behind a front share (relay.py, ws_hosts.py):
starting one row's processes, each host connected straight to the front or
through a `lubeck relay`, and reading their CPU time."""
import os
import subprocess

from conftest import free_port   # tests/e2e: on the path of the benchmarks that use this

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    """CPU seconds (user + system) a process has spent so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def interleaved(rows, rounds, measure):
    """{row: [measure(row) of each round]}, every row measured once per round
    in turn, so that drift in the machine's load touches all rows alike."""
    results = {row: [] for row in rows}
    for _ in range(rounds):
        for row in rows:
            results[row].append(measure(row))
    return results


class Hosts:
    """`with Hosts(lubeck, app, front, n, relay) as row:` n hosts running app,
    on front (anything with send_spec and recv_spec). relay: None (each host
    connects straight), "tcp" (through a relay, hosts join over tcp://) or
    "ipc" (over ipc:// in run_dir, as hosts on the relay's machine would).
    row.hosts and row.relay (None when direct) are the processes."""

    def __init__(self, lubeck, app, front, n, relay=None, run_dir="/tmp"):
        self.lubeck, self.app, self.front, self.n, self.mode = lubeck, app, front, n, relay
        self.run_dir = run_dir
        self.hosts, self.relay = [], None

    def __enter__(self):
        front = ["--send", self.front.send_spec, "--recv", self.front.recv_spec]
        argv = front
        if self.mode:
            listen = "tcp://127.0.0.1:%d" % free_port()
            if self.mode == "ipc":
                listen = "ipc://%s/relay-%d.sock" % (self.run_dir, free_port())
            self.relay = subprocess.Popen([self.lubeck, "relay"] + front + ["--listen", listen],
                                          stderr=subprocess.DEVNULL)
            argv = ["--relay", listen]
        for _ in range(self.n):
            self.hosts.append(subprocess.Popen([self.lubeck, "run", self.app] + argv,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc):
        for p in self.hosts:
            stop(p)
        if self.relay:
            stop(self.relay)

    def cpu(self):
        """(CPU seconds of all hosts, of the relay or 0) so far."""
        return sum(cpu(p.pid) for p in self.hosts), cpu(self.relay.pid) if self.relay else 0
