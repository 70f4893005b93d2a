"""Pages as a browser sees them (one-shot --dump-dom): headless Chromium against `lubeck serve` and a
real Mongrel2. The DOM is read after the page's scripts ran (--dump-dom), and
the host's access lines say what the browser asked for."""
import os
import shutil
import subprocess

import pytest

from conftest import LUBECK, ROOT, Server, http_request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")


def dom(url, tmp_path):
    """The page's DOM once it loaded and its scripts had 5 s of (virtual) time."""
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=" + str(tmp_path / "chromium"),
                        "--virtual-time-budget=5000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def requests_answered(server, status):
    return [l for l in server.stdout if " %d " % status in l and l.startswith("127.0.0.1 ")]


def test_the_websocket_chat_page_shows_what_was_said_over_http(tmp_path):
    server = Server(os.path.join(ROOT, "apps", "chat"), tmp_path / "run")
    try:
        r = http_request(server.port, "POST", "/say", body="name=ann&text=hello+from+a+form",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 201
        page = dom("http://127.0.0.1:%d/static/ws.html" % server.port, tmp_path)
        assert "hello from a form" in page            # ws.js connected and room.js drew it
        assert 'href="/"' in page                      # and it links the long-poll page
        server.process.wait_line("WEBSOCKET_HANDSHAKE /ws 101")
        server.process.wait_line("GET /favicon.ico 200")
        assert not requests_answered(server, 404), server.stdout
    finally:
        server.stop()


def test_a_new_app_renders_in_a_browser(tmp_path):
    r = subprocess.run([LUBECK, "new", "site"], cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    server = Server(str(tmp_path / "site"), tmp_path / "run")
    try:
        page = dom("http://127.0.0.1:%d/" % server.port, tmp_path)
        assert "<h1>site</h1>" in page
        assert '<link rel="stylesheet" href="/static/style.css">' in page
        nowhere = dom("http://127.0.0.1:%d/nowhere" % server.port, tmp_path)
        assert "<h1>404 Not Found</h1>" in nowhere and "There is nothing at this address." in nowhere
        server.process.wait_line("GET /nowhere 404")
        assert [l for l in requests_answered(server, 404) if "/nowhere" not in l] == []
    finally:
        server.stop()
