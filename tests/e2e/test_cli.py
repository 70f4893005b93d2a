"""The lubeck command line as a user meets it: `serve` supervising its Mongrel2,
signals, one-line start-up errors, --reload watching only what the app loads,
--help on every command, `check`'s messages, `lubeck new`, and `m2conf` with
the commands docs/deploy.md gives."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUILD, LUBECK, ROOT, Process, Server, free_port, http_request

APP = '''local lubeck = require "lubeck"
local greeting = require "greeting"
local app = lubeck.app{}
local loaded_at = io.open("/proc/sys/kernel/random/uuid"):read("*l")   -- new on every (re)load
app:get("/", function() return greeting.text end)
app:get("/loaded", function() return loaded_at end)
return app
'''


def write_app(folder, text="hello"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "app.lua"), "w") as f:
        f.write(APP)
    set_greeting(folder, text)
    return str(folder)


def set_greeting(folder, text):
    """Rewrites greeting.lua atomically, as editors do."""
    path = os.path.join(folder, "greeting.lua")
    with open(path + ".tmp", "w") as f:
        f.write('return { text = "%s" }\n' % text)
    os.rename(path + ".tmp", path)


def run_cli(*args, timeout=20, **kw):
    return subprocess.run([LUBECK] + list(args), capture_output=True, text=True, timeout=timeout, **kw)


def mongrel2_pid(run_dir):
    with open(os.path.join(str(run_dir), "run", "mongrel2.pid")) as f:
        return int(f.read().strip())


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive either
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(") ")[1][0] != "Z"


def wait_until(predicate, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def one_line(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line, got:\n" + stderr
    return lines[0]


# ---- serve supervises its Mongrel2 --------------------------------------------------------

def test_a_killed_mongrel2_is_restarted_and_serve_answers_again(tmp_path):
    app = write_app(tmp_path / "app")
    server = Server(app, tmp_path / "run")
    try:
        assert server.get("/").text == "hello"
        first = mongrel2_pid(tmp_path / "run")
        os.kill(first, signal.SIGKILL)
        line = server.process.wait_line("mongrel2 was killed by signal 9", stream="err")
        assert "137" not in line and "restarting" in line
        server.process.wait_line("serving again", stream="err")
        r = server.get("/")
        assert (r.status, r.text) == (200, "hello")
        assert mongrel2_pid(tmp_path / "run") != first
        assert not any("[INFO]" in l for l in server.stderr)    # no Mongrel2 log dump
    finally:
        assert server.stop() == 0


def test_a_mongrel2_that_keeps_dying_is_given_up_in_one_line(tmp_path):
    app = write_app(tmp_path / "app")
    server = Server(app, tmp_path / "run")
    try:
        killed = set()
        deadline = time.time() + 30
        while server.process.proc.poll() is None and time.time() < deadline:
            try:
                pid = mongrel2_pid(tmp_path / "run")
            except (OSError, ValueError):
                pid = None
            if pid and pid not in killed and alive(pid):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.02)
        assert server.process.proc.wait(15) == 1
        server.process.wait_line("giving up", stream="err")
        assert len(killed) == 6
        assert len([l for l in server.stderr if "restarting it in" in l]) == 5
    finally:
        server.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_stops_serve_and_its_mongrel2(tmp_path, workers):
    app = write_app(tmp_path / "app")
    server = Server(app, tmp_path / "run", ["--workers", workers])
    m2 = mongrel2_pid(tmp_path / "run")
    server.process.signal(signal.SIGHUP)
    assert server.process.proc.wait(15) == 0
    assert wait_until(lambda: not alive(m2)), "mongrel2 outlived serve"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_closing_its_terminal_stops_serve_and_its_mongrel2(tmp_path):
    """serve on a pseudo-terminal of its own; closing the terminal's other end
    is what closing a terminal window does (the kernel sends SIGHUP)."""
    import fcntl
    import pty
    import termios
    app = write_app(tmp_path / "app")
    port = free_port()
    master, slave = pty.openpty()

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    proc = subprocess.Popen([LUBECK, "serve", app, "--port", str(port), "--run-dir", str(tmp_path / "run")],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=take_terminal)
    os.close(slave)
    try:
        seen = b""
        deadline = time.time() + 20
        while b"serving" not in seen and time.time() < deadline:
            seen += os.read(master, 4096)
        assert b"serving" in seen, seen
        m2 = mongrel2_pid(tmp_path / "run")
        os.close(master)
        master = None
        assert proc.wait(15) == 0
        assert wait_until(lambda: not alive(m2)), "mongrel2 outlived serve"
    finally:
        if master is not None:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigusr1_reloads_the_app(tmp_path):
    app = write_app(tmp_path / "app", "before")
    server = Server(app, tmp_path / "run")
    try:
        assert server.get("/").text == "before"
        set_greeting(app, "after")
        server.process.signal(signal.SIGUSR1)
        assert wait_until(lambda: server.get("/").text == "after"), "SIGUSR1 did not reload"
        assert server.process.proc.poll() is None
    finally:
        server.stop()


# ---- start-up failures: one line naming the cause -----------------------------------------

def test_a_port_in_use_is_one_line(tmp_path):
    app = write_app(tmp_path / "app")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli("serve", app, "--port", str(port), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 1
    assert "port %d is in use" % port in one_line(r.stderr)


def test_a_second_serve_on_the_same_app_is_one_line(tmp_path):
    app = write_app(tmp_path / "app")
    port = free_port()
    first = Process([LUBECK, "serve", app, "--port", str(port)])   # run folder APP/.lubeck
    try:
        first.wait_line("serving", timeout=20)
        r = run_cli("serve", app, "--port", str(free_port()))
        assert r.returncode == 1
        line = one_line(r.stderr)
        assert "another lubeck serve (pid %d)" % first.proc.pid in line
        assert os.path.join(app, ".lubeck") in line
        assert first.proc.poll() is None                          # the first one is untouched
        with open(os.path.join(app, ".lubeck", ".gitignore")) as f:
            assert f.read() == "*\n"                               # git ignores the run folder
        assert http_request(port, "GET", "/").status == 200
    finally:
        assert first.stop() == 0


def test_a_config_mongrel2_refuses_is_one_line(tmp_path):
    app = write_app(tmp_path / "app")
    r = run_cli("serve", app, "--port", str(free_port()), "--host", "127.0.0'1",
                "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "mongrel2 refused its config" in line and "SYNTAX ERROR" in line


def test_an_address_not_of_this_machine_is_one_line(tmp_path):
    app = write_app(tmp_path / "app")
    r = run_cli("serve", app, "--port", str(free_port()), "--host", "192.0.2.1",
                "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 1
    assert "cannot listen on 192.0.2.1" in one_line(r.stderr)


# ---- --reload watches what the app loads -----------------------------------------------------

def test_reload_ignores_files_the_app_writes_and_follows_its_modules(tmp_path):
    app = write_app(tmp_path / "app", "one")
    server = Server(app, tmp_path / "run", ["--reload"])
    try:
        loaded = server.get("/loaded").text
        os.makedirs(os.path.join(app, "uploads"))
        for name in ("uploads/photo.png", "notes.txt", "data.json", "todo.db"):
            with open(os.path.join(app, name), "w") as f:
                f.write("written by the app")
        time.sleep(1.0)                                   # the watcher's quiet time is 50 ms
        assert server.get("/loaded").text == loaded, "a written file reloaded the app"
        assert not any("reloaded" in l for l in server.stderr)
        set_greeting(app, "two")
        assert wait_until(lambda: server.get("/").text == "two"), "a changed module did not reload"
        assert server.get("/loaded").text != loaded
    finally:
        server.stop()


# ---- --help, -v, unknown flags --------------------------------------------------------------

COMMANDS = {
    "serve": ["--port", "--host", "--run-dir", "--workers", "--reload", "--debug", "--drain", "--max-body"],
    "run": ["--send", "--recv", "--sender-id", "--workers", "--reload", "--drain", "--upload-dir"],
    "check": [],
    "m2conf": ["--port", "--host", "--run-dir"],
    "new": [],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(command, flag):
    r = run_cli(command, flag)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: lubeck %s" % command)
    for option in COMMANDS[command]:
        assert re.search(r"^  %s\b" % re.escape(option), r.stdout, re.M), option
    assert "example:\n  lubeck %s" % command in r.stdout
    assert run_cli(command, "APP", flag).returncode == 0      # after the APP_DIR too


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version_flags(flag):
    r = run_cli(flag)
    assert r.returncode == 0 and re.match(r"lubeck \d+\.\d+\.\d+\n$", r.stdout)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_top_level_help_lists_every_command(flag):
    r = run_cli(flag)
    assert r.returncode == 0
    for command in COMMANDS:
        assert "lubeck %s " % command in r.stdout


def test_an_unknown_flag_is_named_as_unknown(tmp_path):
    r = run_cli("serve", str(tmp_path), "--bogus")
    assert r.returncode == 2
    assert "unknown option --bogus" in one_line(r.stderr)
    r = run_cli("serve", str(tmp_path), "--port")
    assert r.returncode == 2 and "--port needs a value" in one_line(r.stderr)
    r = run_cli("check", str(tmp_path), "--port", "80")
    assert r.returncode == 2 and "check takes no --port option" in one_line(r.stderr)


# ---- check's messages -------------------------------------------------------------------------

def check_app(tmp_path, lines):
    (tmp_path / "app.lua").write_text('local lubeck = require "lubeck"\nlocal app = lubeck.app{}\n'
                                      + "".join(l + "\n" for l in lines) + "return app\n")
    return run_cli("check", str(tmp_path))


def test_check_without_app_lua_says_so_without_a_traceback(tmp_path):
    r = run_cli("check", str(tmp_path / "nowhere"))
    assert r.returncode == 1
    assert "is not an app folder (no app.lua)" in one_line(r.stderr)


def test_check_hints_at_the_colon(tmp_path):
    r = check_app(tmp_path, ['app.get("/", function() return "x" end)'])
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert re.search(r"app\.lua:3: app\.get\(\.\.\.\) needs a colon: write app:get\(\"/\", \.\.\.\)", line)


def test_check_has_no_traceback_for_a_runtime_error(tmp_path):
    r = check_app(tmp_path, ["local x", "x.y = 1"])
    assert r.returncode == 1
    assert re.search(r"app\.lua:4: attempt to index", one_line(r.stderr))
    assert "stack traceback" not in r.stderr and "loader.lua" not in r.stderr


def test_check_warns_about_routes_that_never_match(tmp_path):
    r = check_app(tmp_path, ['app:get("/", function() return "a" end)',
                             'app:get("/", function() return "b" end)',
                             'app:get("/files/*path", function() end)',
                             'app:get("/files/readme", function() end)',
                             'app:post("/files/readme", function() end)'])
    assert r.returncode == 0
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 2, r.stderr
    assert re.search(r"app\.lua:4: warning: route / is already declared at .*app\.lua:3", warnings[0])
    assert re.search(r"app\.lua:6: warning: route /files/readme can never match: /files/\*path", warnings[1])


# ---- lubeck new --------------------------------------------------------------------------------

def lua_env():
    env = dict(os.environ,
               LUA_PATH="%s/lua/?.lua;%s/lua/?/init.lua;;" % (ROOT, ROOT),
               LUA_CPATH="%s/lua/?.so;;" % BUILD)
    # A sanitized test host loads into luajit only after the ASan runtime.
    ldd = subprocess.run(["ldd", os.path.join(BUILD, "lua", "lubeck", "testhost.so")],
                         capture_output=True, text=True).stdout
    asan = re.search(r"libasan\.so\S* => (\S+)", ldd)
    if asan:
        env.update(LD_PRELOAD=asan.group(1), ASAN_OPTIONS="detect_leaks=0")
    return env


def test_new_makes_an_app_that_serves_checks_clean_and_passes_its_spec(tmp_path):
    r = run_cli("new", "blog", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    app = tmp_path / "blog"
    for path in ("app.lua", "templates/layout.html", "templates/index.html", "static/style.css",
                 "spec/app_spec.lua", ".gitignore", "README.md"):
        assert (app / path).is_file(), path
    assert ".lubeck/" in (app / ".gitignore").read_text().splitlines()

    r = run_cli("check", str(app))
    assert (r.returncode, r.stderr) == (0, "")

    spec = subprocess.run(["busted"], cwd=str(app), env=lua_env(), capture_output=True, text=True,
                          timeout=60)      # .busted picks LuaJIT
    assert spec.returncode == 0, spec.stdout + spec.stderr
    assert "3 successes / 0 failures / 0 errors" in spec.stdout

    server = Server(str(app), tmp_path / "run")
    try:
        page = server.get("/")
        assert page.status == 200 and "<h1>blog</h1>" in page.text
        assert '<link rel="icon" href="/static/favicon.svg">' in page.text
        assert server.get("/static/style.css").status == 200
        assert server.get("/static/favicon.svg").status == 200
    finally:
        server.stop()

    again = run_cli("new", "blog", cwd=str(tmp_path))
    assert again.returncode == 1 and "blog already exists" in one_line(again.stderr)


# ---- m2conf + m2sh load + mongrel2 + lubeck run, from docs/deploy.md alone --------------------

def deploy_commands():
    """The command block of docs/deploy.md's "By hand" section (the one after the export)."""
    with open(os.path.join(ROOT, "docs", "deploy.md")) as f:
        blocks = re.findall(r"```sh\n(.*?)```", f.read(), re.S)
    assert blocks[0].startswith("export APP=")
    return [l for l in blocks[1].splitlines() if l.strip()]


def test_deploy_md_commands_serve_the_app(tmp_path):
    import shutil
    app = tmp_path / "hello"
    shutil.copytree(os.path.join(ROOT, "apps", "hello"), str(app))
    etc = tmp_path / "etc"
    etc.mkdir()
    env = dict(os.environ, LOGNAME=os.environ.get("LOGNAME", "lubeck"))   # m2sh wants one, as a shell has
    env.update(APP=str(app), PORT=str(free_port()), SEND="tcp://127.0.0.1:%d" % free_port(),
               RECV="tcp://127.0.0.1:%d" % free_port(), PATH=BUILD + os.pathsep + os.environ["PATH"])
    m2conf, load, start_mongrel2, run = deploy_commands()
    for line in (m2conf, load):
        r = subprocess.run(["bash", "-c", line], cwd=str(etc), env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and "[ERROR]" not in r.stdout + r.stderr, line + "\n" + r.stderr
    mongrel2 = Process(["bash", "-c", start_mongrel2], env=env, cwd=str(etc))
    host = Process(["bash", "-c", run], env=env, cwd=str(etc))
    try:
        port = int(env["PORT"])

        def answered():
            try:
                return http_request(port, "GET", "/", timeout=2)
            except OSError:
                return None
        assert wait_until(answered, timeout=15), "no answer:\n%s\n%s" % (mongrel2.err, host.err)
        r = http_request(port, "GET", "/")
        assert (r.status, r.text) == (200, "Hello from Lua")
        assert http_request(port, "GET", "/static/hello.txt").status == 200
        host.wait_line("GET / 200")
    finally:
        for p in (host, mongrel2):
            p.signal(signal.SIGTERM)
            try:
                os.killpg(p.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            p.proc.wait(15)
