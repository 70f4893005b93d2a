"""A small driver for Debian's chromium over the Chrome DevTools Protocol, for
the browser tests: start it headless, open pages, type, click, wait for what a
page shows, take screenshots. Each page has a WebSocket of its own to the
browser (python3-websocket); every call and every wait has a deadline."""
import base64
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

import websocket

CHROMIUM = shutil.which("chromium")

FLAGS = [
    "--headless=new",
    "--remote-debugging-port=0",        # chromium picks a free port and writes it down
    "--no-sandbox",                     # the tests run as root, where the sandbox refuses
    "--no-first-run", "--no-default-browser-check", "--disable-sync",
    "--disable-extensions", "--disable-component-update",
    "--disable-background-networking",  # no traffic beyond the loopback server under test
    "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
    # two pages side by side must both stay live, as two windows on a desk would
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=1000,700",
]


class BrowserError(Exception):
    """Chromium did not start, or a DevTools call failed."""


class Browser:
    """One headless chromium with a profile of its own, stopped by stop()."""

    def __init__(self, artefacts=None, start_timeout=20):
        if not CHROMIUM:
            raise BrowserError("no chromium on PATH (Debian package chromium)")
        self.artefacts = artefacts      # where a page saves a screenshot when a wait times out
        self.profile = tempfile.mkdtemp(prefix="lubeck-chromium-")
        self.log_path = os.path.join(self.profile, "chromium.log")
        self.pages = []
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [CHROMIUM, "--user-data-dir=" + self.profile] + FLAGS + ["about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            self.port, path = self._devtools_address(start_timeout)
            self.conn = Connection("ws://127.0.0.1:%d%s" % (self.port, path))
        except BaseException:
            self.stop()
            raise

    def _devtools_address(self, timeout):
        """(port, browser path) from the DevToolsActivePort file chromium writes
        into its profile once it listens."""
        active = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError("chromium exited with status %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                with open(active) as f:
                    lines = f.read().split()
                if len(lines) >= 2:
                    return int(lines[0]), lines[1]
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise BrowserError("chromium wrote no DevToolsActivePort within %gs:\n%s" % (
            timeout, self.log_tail()))

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def open(self, url, name):
        """A new page showing url once its load event fired; name labels its
        screenshots and errors."""
        target = self.conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = Page(self, target, name)
        self.pages.append(page)
        page.navigate(url)
        return page

    def stop(self):
        for page in self.pages:
            page.conn.close()
        if getattr(self, "conn", None):
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:                            # its renderers and helpers share its process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Connection:
    """One DevTools WebSocket: numbered calls, and the events that arrive
    meanwhile kept in order for whoever waits for them."""

    def __init__(self, url, timeout=10):
        # chromium refuses DevTools sockets that carry an Origin it was not told about
        self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events = []

    def _next(self, deadline):
        """The next message, or None at the deadline. select() first, so a
        timeout never falls in the middle of a frame."""
        left = deadline - time.time()
        if left <= 0:
            return None
        readable, _, _ = select.select([self.ws.sock], [], [], left)
        if not readable:
            return None
        return json.loads(self.ws.recv())

    def call(self, method, params=None, timeout=10):
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while True:
            message = self._next(deadline)
            if message is None:
                raise BrowserError("%s: no answer within %gs" % (method, timeout))
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError("%s: %s" % (method, message["error"].get("message")))
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method, timeout, match=lambda params: True):
        """The first queued or arriving event named method whose params match
        (taken off the queue)."""
        deadline = time.time() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method and match(event.get("params", {})):
                    return self.events.pop(i)
            message = self._next(deadline)
            if message is None:
                raise BrowserError("no %s within %gs" % (method, timeout))
            if "method" in message:
                self.events.append(message)

    def drain(self):
        """Queues the events already sent, without waiting for more."""
        while True:
            message = self._next(time.time() + 0.01)
            if message is None:
                return
            if "method" in message:
                self.events.append(message)

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:               # the browser may already be gone
            pass


class Page:
    """One tab. Selectors are CSS; text checks use innerText, what a person sees."""

    def __init__(self, browser, target, name):
        self.browser, self.target, self.name = browser, target, name
        self.conn = Connection("ws://127.0.0.1:%d/devtools/page/%s" % (browser.port, target))
        self.conn.call("Page.enable")
        self.conn.call("Page.setLifecycleEventsEnabled", {"enabled": True})
        self.conn.call("Runtime.enable")    # for the page's uncaught exceptions

    def _loaded(self, loader, timeout):
        """Waits for the load event of the document that loader brings (each
        navigation has its own loader id, so an earlier page's load never counts)."""
        self.conn.wait_event("Page.lifecycleEvent", timeout,
                             lambda p: p.get("name") == "load" and p.get("loaderId") == loader)

    def navigate(self, url, timeout=10):
        result = self.conn.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise BrowserError("%s: opening %s: %s" % (self.name, url, result["errorText"]))
        self._loaded(result["loaderId"], timeout)

    def reload(self, timeout=10):
        """Reloads, as the browser's button does; returns once the new document loaded."""
        self.conn.drain()
        self.conn.events = [e for e in self.conn.events if e["method"] != "Page.frameNavigated"]
        self.conn.call("Page.reload", {"ignoreCache": True}, timeout)
        navigated = self.conn.wait_event("Page.frameNavigated", timeout,
                                         lambda p: "parentId" not in p["frame"])
        self._loaded(navigated["params"]["frame"]["loaderId"], timeout)

    def evaluate(self, expression, timeout=10):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.conn.call("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError("%s: %s\nin: %s" % (self.name, text, expression))
        return result["result"].get("value")

    def fill(self, selector, text):
        """Focuses the field, selects what it holds and types text over it."""
        self.conn.call("Page.bringToFront")
        found = self.evaluate("""(() => {
            const field = document.querySelector(%s);
            if (!field) return false;
            field.focus(); field.select();
            return document.activeElement === field; })()""" % json.dumps(selector))
        if not found:
            raise BrowserError("%s: no field %s to type into" % (self.name, selector))
        self.conn.call("Input.insertText", {"text": text})

    def click(self, selector):
        """A left click in the middle of the element, as the mouse would do it:
        it fails when something else covers that spot."""
        self.conn.call("Page.bringToFront")
        spot = self.evaluate("""(() => {
            const el = document.querySelector(%s);
            if (!el) return "missing";
            el.scrollIntoView({block: "center"});
            const r = el.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            const hit = document.elementFromPoint(x, y);
            if (!hit || !(hit === el || el.contains(hit)))
                return "covered by " + (hit ? hit.outerHTML.slice(0, 80) : "nothing");
            return {x, y}; })()""" % json.dumps(selector))
        if not isinstance(spot, dict):
            raise BrowserError("%s: cannot click %s: %s" % (self.name, selector, spot))
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.conn.call("Input.dispatchMouseEvent", dict(
                spot, type=kind, button="left" if kind != "mouseMoved" else "none",
                clickCount=1 if kind != "mouseMoved" else 0))

    def text(self, selector="body"):
        return self.evaluate("(document.querySelector(%s) || {}).innerText" % json.dumps(selector))

    def wait_until(self, expression, timeout, what):
        """Polls a JavaScript expression until it is truthy; on timeout fails with
        what the page shows (and a screenshot when the browser keeps artefacts)."""
        deadline = time.time() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.time() >= deadline:
                break
            time.sleep(0.1)
        shot = ""
        if self.browser.artefacts:
            shot = "\nscreenshot: " + self.screenshot(
                os.path.join(self.browser.artefacts, "%s-timeout.png" % self.name))
        raise AssertionError("%s: not within %gs: %s\nthe page shows:\n%s%s" % (
            self.name, timeout, what, self.text(), shot))

    def screenshot(self, path):
        """Saves what the page's viewport shows as a PNG at path; returns path."""
        self.conn.call("Page.bringToFront")
        data = self.conn.call("Page.captureScreenshot", {"format": "png"})["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        """Closes the tab, which ends the requests and sockets it holds open."""
        self.conn.close()
        self.browser.conn.call("Target.closeTarget", {"targetId": self.target})
        self.browser.pages.remove(self)

    def exceptions(self):
        """The page's uncaught JavaScript exceptions so far, as text."""
        self.conn.drain()
        found = []
        for event in self.conn.events:
            if event["method"] == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text"))
        return found
