"""Installing (docs/embedding.md): `cmake --install` of the build into a temp
prefix, apps/embed built against that prefix with pkg-config (shared and static),
and `luarocks make` of the rockspec into a temp tree. Each installed host must
find the Lua modules of its own prefix with no environment variable: a probe
module exists only there, and a probe app requires it."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT
from test_embed import Mongrel2Stub

API = {"lubeck_new", "lubeck_register", "lubeck_start", "lubeck_stop", "lubeck_inflight",
       "lubeck_free", "lubeck_error"}
API |= {"ngx_hex_dump"}   # nginx's name: lua-resty-string's to_hex finds it through the FFI
PROBE_APP = """local probe = require "lubeck_install_probe"   -- only in the installed tree
local app = require("lubeck").app{ name = "probe" }
app:get("/", function(req) return probe end)
return app
"""


def run(argv, **kw):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LUBECK_LUA_DIR", "LUA_PATH", "LUA_CPATH", "PKG_CONFIG_PATH")}
    env.update(kw.pop("env", {}))
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                       timeout=kw.pop("timeout", 120), **kw)
    assert p.returncode == 0, "%s failed:\n%s" % (" ".join(argv), p.stdout.decode())
    return p.stdout.decode()


def probe(tmp_path, lua_dir):
    """Puts the probe module beside the installed modules; returns the probe app."""
    with open(os.path.join(lua_dir, "lubeck_install_probe.lua"), "w") as f:
        f.write('return "from %s"\n' % lua_dir)
    app = tmp_path / "probe_app"
    app.mkdir()
    (app / "app.lua").write_text(PROBE_APP)
    return str(app)


def answers(argv, expected):
    stub = Mongrel2Stub(argv, start_timeout=20)
    try:
        status, _, body = stub.get("/")
        assert (status, body.decode()) == (200, expected)
    finally:
        stub.close()


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefix")
    run(["cmake", "--install", BUILD, "--prefix", str(root)])
    return root


def test_install_lays_out_the_prefix(prefix):
    for path in ("bin/lubeck", "include/lubeck.h", "lib/liblubeck.so", "lib/liblubeck.a",
                 "lib/pkgconfig/lubeck.pc", "lib/lua/5.1/lubeck/testhost.so",
                 "share/lua/5.1/lubeck/init.lua", "share/lua/5.1/lubeck/test.lua"):
        assert (prefix / path).exists(), path


def test_shared_library_exports_only_the_api(prefix):
    lib = str(prefix / "lib" / "liblubeck.so")
    lines = [l.split() for l in run(["nm", "-D", "--defined-only", lib]).splitlines()]
    assert {l[2] for l in lines if len(l) == 3 and l[1] in "TWDBR"} == API
    # The caller's loop drives the host: the library never runs a loop itself.
    assert "ev_run" not in run(["nm", "-D", "--undefined-only", lib]).split()


def test_installed_executable_finds_its_modules(prefix, tmp_path):
    app = probe(tmp_path, str(prefix / "share" / "lua" / "5.1"))
    out = run([str(prefix / "bin" / "lubeck"), "check", app])
    assert "ok" in out


def test_embed_builds_against_the_prefix_with_pkg_config(prefix, tmp_path):
    env = {"PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")}
    flags = run(["pkg-config", "--cflags", "--libs", "lubeck"], env=env).split()
    exe = str(tmp_path / "embed")
    run(["cc", "-Wall", "-Werror", "-o", exe, os.path.join(ROOT, "apps", "embed", "main.c")]
        + flags + ["-Wl,-rpath," + str(prefix / "lib")])
    linked = [l for l in run(["ldd", exe]).splitlines() if "liblubeck" in l]
    assert len(linked) == 1 and str(prefix) in linked[0], linked
    lua_dir = str(prefix / "share" / "lua" / "5.1")
    app = probe(tmp_path, lua_dir)
    answers([exe, app], "from " + lua_dir)          # found next to liblubeck.so
    # Against liblubeck.a: --static brings what the archive needs.
    static_flags = run(["pkg-config", "--static", "--cflags", "--libs", "lubeck"], env=env).split()
    static_flags = [f if f != "-llubeck" else "-Wl,-Bstatic,-llubeck,-Bdynamic"
                    for f in static_flags]
    static_exe = str(prefix / "bin" / "embed-static")
    run(["cc", "-Wall", "-Werror", "-o", static_exe,
         os.path.join(ROOT, "apps", "embed", "main.c")] + static_flags)
    assert "liblubeck" not in run(["ldd", static_exe])
    answers([static_exe, app], "from " + lua_dir)   # found from <prefix>/bin


def test_luarocks_make_installs_a_working_tree(tmp_path):
    if not shutil.which("luarocks"):
        pytest.skip("luarocks is not installed")
    # Build a copy, so the host cannot fall back on this source tree's lua/ folder.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("CMakeLists.txt", "lubeck-scm-1.rockspec", "host", "lua", "cmake", "apps", "tests"):
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(".lubeck", "__pycache__"))
        else:
            shutil.copy(path, src / name)
    tree = tmp_path / "tree"
    # The README's command as written: no --deps-mode, no LUA_INCDIR (lua-cjson is Debian's).
    run(["luarocks", "make", "--tree", str(tree), "lubeck-scm-1.rockspec"], cwd=str(src),
        env={"CMAKE_BUILD_PARALLEL_LEVEL": "2"}, timeout=600)
    shutil.rmtree(src)
    lua_dir = str(tree / "share" / "lua" / "5.1")
    for path in ("bin/lubeck", "share/lua/5.1/lubeck/init.lua", "lib/lua/5.1/lubeck/testhost.so"):
        assert (tree / path).exists(), path
    assert not (tree / "lib" / "lua" / "5.1" / "liblubeck.so").exists()
    app = probe(tmp_path, lua_dir)
    assert "ok" in run([str(tree / "bin" / "lubeck"), "check", app])
    # lubeck.test through the rock's testhost.so, with the tree's paths only.
    script = ('local c = require("lubeck.test").client(%r); local r = c:get("/"); '
              'io.write(r.status, " ", r.body)' % app).replace("'", '"')
    out = run(["luajit", "-e", script], env={
        "LUA_PATH": "%s/?.lua;%s/?/init.lua;;" % (lua_dir, lua_dir),
        "LUA_CPATH": "%s/lib/lua/5.1/?.so;;" % tree})
    assert out == "200 from " + lua_dir
    # The rock keeps the C library and its lubeck.pc in its own folder.
    pcs = list(tree.glob("lib/luarocks/rocks-5.1/lubeck/scm-1/dev/lib/pkgconfig/lubeck.pc"))
    assert pcs, "no lubeck.pc in the rock"
