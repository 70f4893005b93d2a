"""The example apps in a real browser: headless chromium (Debian's), driven over
the DevTools protocol (cdp.py), against `lubeck serve` and its Mongrel2. Two
pages at once, as two people would have them: what one types, the other sees.

Screenshots are kept in $LUBECK_ARTEFACTS/browser, or build/artefacts/browser
in the repository; their paths are printed as the tests take them. The tests
are skipped, saying why, only when chromium cannot start."""
import json
import os
import time

import pytest

from conftest import ROOT

websocket = pytest.importorskip(
    "websocket", reason="python3-websocket (Debian) is not installed: make test-deps")
import cdp  # noqa: E402  (needs the websocket module checked above)

ARTEFACTS = os.path.join(os.environ["LUBECK_ARTEFACTS"], "browser") \
    if os.environ.get("LUBECK_ARTEFACTS") else os.path.join(ROOT, "build", "artefacts", "browser")

SEEN_WITHIN = 5.0       # seconds for a message or an item to show on the other page


def tell(request, line):
    """A line on the terminal even while pytest captures the test's output."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(line)


@pytest.fixture
def browser(serve, request):
    """A chromium of the test's own, stopped before the test's server (this
    fixture depends on serve): its stop closes every connection the pages held
    (long polls, WebSockets, idle keep-alives), which the server's stop would
    otherwise wait for."""
    try:
        started = cdp.Browser(artefacts=ARTEFACTS)
    except (cdp.BrowserError, OSError) as e:
        reason = "chromium could not start: %s" % e
        tell(request, "test_browser.py skipped: " + reason)
        pytest.skip(reason)
    yield started
    started.stop()


def screenshot(request, page, name):
    path = page.screenshot(os.path.join(ARTEFACTS, name + ".png"))
    tell(request, "screenshot: " + os.path.relpath(path))
    return path


def shown_count(container, *texts):
    """A JavaScript expression: how many entries of the container show every
    one of texts (innerText: what is on the screen, markup shown as markup)."""
    return """(() => {
        const box = document.querySelector(%s);
        if (!box) return 0;
        const texts = %s;
        return [...box.children].filter(
            (entry) => texts.every((t) => entry.innerText.includes(t))).length; })()""" % (
        json.dumps(container), json.dumps(list(texts)))


def wait_shown(page, container, *texts):
    page.wait_until(shown_count(container, *texts) + " > 0", SEEN_WITHIN,
                    "%s showing %s" % (container, " and ".join(map(repr, texts))))


def submit_button(form):
    """The form's send button, whether drawn as a <button> or an <input>."""
    return "%s button, %s [type=submit]" % (form, form)


def say(page, text):
    page.fill("#say [name=text]", text)
    page.click(submit_button("#say"))


def test_chat_message_typed_on_one_page_shows_on_the_other(serve, browser, request):
    started = time.time()
    base = "http://127.0.0.1:%d" % serve("apps/chat").port
    poll_page = browser.open(base + "/", "chat-long-poll")
    ws_page = browser.open(base + "/static/ws.html", "chat-websocket")
    poll_page.fill("#say [name=name]", "ada")
    ws_page.fill("#say [name=name]", "brian")

    # The WebSocket page shows it live or among the recent messages it gets on
    # opening; either way, once it shows, that page's socket is open.
    first = "hello from the long-poll page"
    say(poll_page, first)
    for page in (poll_page, ws_page):
        wait_shown(page, "#messages", "ada", first)

    # Now both pages are listening: each message has to travel live.
    second = "hi ada, <b>this</b> & that over the WebSocket"
    say(ws_page, second)
    for page in (ws_page, poll_page):
        wait_shown(page, "#messages", "brian", second)   # the markup shown as typed

    third = "both ways, then"
    say(poll_page, third)
    for page in (poll_page, ws_page):
        wait_shown(page, "#messages", "ada", third)

    screenshot(request, poll_page, "chat-long-poll")
    screenshot(request, ws_page, "chat-websocket")
    for page in (poll_page, ws_page):
        for who, text in (("ada", first), ("brian", second), ("ada", third)):
            assert page.evaluate(shown_count("#messages", who, text)) == 1, \
                "%s shows %r more than once:\n%s" % (page.name, text, page.text())
        assert page.exceptions() == [], page.name
    tell(request, "chat in the browser: %.1fs" % (time.time() - started))


def test_todo_added_on_one_page_is_listed_after_reloading_another(serve, browser, request):
    started = time.time()
    base = "http://127.0.0.1:%d" % serve("apps/todo").port
    adder = browser.open(base + "/", "todo-adder")
    other = browser.open(base + "/", "todo-other")

    title = "buy <i>milk</i> & eggs"
    adder.fill("#title", title)
    adder.click(submit_button("#add"))
    wait_shown(adder, "#list", title)

    other.reload()
    wait_shown(other, "#list", title)
    screenshot(request, adder, "todo-adder")
    screenshot(request, other, "todo-other-reloaded")
    assert other.evaluate(shown_count("#list", title)) == 1, other.text()
    for page in (adder, other):
        assert page.exceptions() == [], page.name
    tell(request, "todo in the browser: %.1fs" % (time.time() - started))
