"""The inspector page in a real headless Chromium, driven as a person would use it.

The browser is Debian's ``chromium`` (``.ci/run`` installs it), driven over the
Chrome DevTools protocol on a pipe (``--remote-debugging-pipe``), so nothing
else is needed: no driver, no websocket library, no network. Without chromium
the test is skipped locally and fails under ``CI``.

Run as a script, the same machinery takes the README's screenshot::

    python tests/test_browser.py --screenshot docs/inspector.png
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import requests

from mparticle_analytics import Client
from mparticle_analytics.devserver import DevServer

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
KEY, SECRET = "us1-demo-key", "demo-secret"


def find_chromium() -> Optional[str]:
    """``$CHROMIUM``, else the first Chromium-like browser on ``PATH``."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for path in map(shutil.which, BINARIES) if path), None)


class CDPError(RuntimeError):
    """The browser answered a command with an error, or not in time."""


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved to descriptors of 10 and up, clear of the 3 and 4 Chromium reads."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


class Browser:
    """A headless Chromium and one DevTools-protocol connection to it over two pipes."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="devserver-chromium-")
        to_browser_r, self._to_browser = _high(os.pipe())
        self._from_browser, from_browser_w = _high(os.pipe())
        # Chromium reads commands on fd 3 and writes answers on fd 4; bash (dash takes no
        # descriptor above 9) puts the pipes there.
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                binary,
                *FLAGS,
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._changed:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def call(
        self,
        method: str,
        params: Optional[dict[str, Any]] = None,
        *,
        session: Optional[str] = None,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; ``CDPError`` on an error or a timeout."""
        with self._changed:
            self._next_id += 1
            number = self._next_id
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise CDPError(f"{method}: the browser is gone ({exc})") from None
        deadline = time.monotonic() + timeout
        with self._changed:
            while number not in self._answers:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise CDPError(f"{method}: no answer ({'browser exited' if self._closed else 'timeout'})")
                self._changed.wait(remaining)
            answer = self._answers.pop(number)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def open(self, url: str, width: int = 1280, height: int = 900) -> Page:
        """A new tab at ``url``, with a ``width`` x ``height`` viewport."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.call("Page.navigate", {"url": url})
        return page

    def close(self) -> None:
        with contextlib.suppress(CDPError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # The browser is gone, so its end of the pipe is closed and the reader sees the end.
        self._reader.join(5)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(
        self, method: str, params: Optional[dict[str, Any]] = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 15.0) -> Any:
        """The JSON value of ``expression`` in the page (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 10.0) -> bool:
        """Wait until the JS ``condition`` is true: re-checked on every DOM change, in the page."""
        script = f"""new Promise((resolve) => {{
            const check = () => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }};
            if (check()) return resolve(true);
            const observer = new MutationObserver(() => {{
                if (check()) {{ observer.disconnect(); clearTimeout(timer); resolve(true); }}
            }});
            const timer = setTimeout(() => {{
                observer.disconnect(); resolve(check());
            }}, {int(timeout * 1000)});
            observer.observe(document, {{
                subtree: true, childList: true, attributes: true, characterData: true
            }});
        }})"""
        return bool(self.evaluate(script, timeout=timeout + 5))

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field, clear it with Ctrl+A / Backspace, and type ``text`` as keyboard input."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self._key("Backspace", 8)
        if text:
            self.call("Input.insertText", {"text": text})

    def _key(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code},
            )

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": min(size["height"], 2400),
                    "scale": 1,
                },
            )
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))


# --- what the test sends ------------------------------------------------------


def send_demo_events(url: str) -> None:
    """A few users' calls through the library, as an application would make them."""
    client = Client(KEY, secret=SECRET, host=url, upload_interval=0.05)
    try:
        client.identify("user-1", {"email": "ada@example.com", "firstName": "Ada", "plan": "pro"})
        client.track(
            "user-1", "Signed Up", {"plan": "pro", "trial_days": 14, "source": {"campaign": "spring"}}
        )
        client.page("user-1", "Docs", "Quickstart", {"url": "https://example.com/docs"})
        client.track(
            "user-2",
            "Order Completed",
            {
                "order_id": "o-1001",
                "total": 27.5,
                "currency": "USD",
                "products": [{"product_id": "p-1", "name": "Monopoly", "price": 19, "quantity": 1}],
            },
        )
        client.track(anonymous_id="anon-3", event="Viewed Pricing", properties={"tier": "team"})
        assert client.flush(timeout=10)
    finally:
        client.shutdown(timeout=5)


def send_broken_batch(url: str) -> requests.Response:
    """What a hand-rolled integration might send: mParticle's schema rejects it."""
    batch = {
        "environment": "development",
        "user_identities": {"customer_id": "user-4"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Clicked Buy", "custom_attributes": {"cart": ["p-1", "p-2"]}},
            }
        ],
    }
    return requests.post(url + "/v2/bulkevents", json=[batch], auth=(KEY, SECRET), timeout=10)


# --- the test -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run should have installed it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    running = Browser(binary)
    try:
        running.call("Browser.getVersion")
        yield running
    finally:
        running.close()


def _sections(page: Page) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = page.evaluate(
        "[...document.querySelectorAll('section.user')].map((s) => ({user: s.dataset.user,"
        " events: [...s.querySelectorAll('tr.event')].map((r) => r.dataset.name)}))"
    )
    return value


def test_page_shows_events_live_highlights_problems_and_filters(browser: Browser, tmp_path: Path) -> None:
    with DevServer(key=KEY, secret=SECRET) as server:
        page = browser.open(server.url + "/")
        assert page.wait_for("document.body.dataset.ready === '1'"), "the page never loaded its data"
        assert page.evaluate("!document.getElementById('empty').hidden")
        page.evaluate("window.loadedOnce = true")

        send_demo_events(server.url)
        batches = len(server.batches())
        assert page.wait_for(f"document.getElementById('count-batches').textContent === '{batches}'"), (
            "new batches did not appear without a reload"
        )
        assert page.evaluate("window.loadedOnce === true"), "the page reloaded"
        assert page.evaluate("document.getElementById('empty').hidden")
        sections = {s["user"]: s["events"] for s in _sections(page)}
        assert sections == {
            "customer_id:user-1": ["Signed Up", "Docs Quickstart"],
            "customer_id:user-2": ["Order Completed"],
            "other:anon-3": ["Viewed Pricing"],
        }
        assert page.evaluate("document.getElementById('count-users').textContent") == "3"
        assert page.evaluate("document.getElementById('count-events').textContent") == "4"
        flattened = page.evaluate(
            "[...document.querySelectorAll('section[data-user=\"customer_id:user-1\"] tr.event')]"
            ".find((r) => r.dataset.name === 'Signed Up').textContent"
        )
        assert "source.campaign spring" in flattened  # a nested property, as the custom attribute it became
        assert page.evaluate("document.querySelectorAll('article.batch.has-errors').length") == 0

        assert send_broken_batch(server.url).status_code == 202
        assert page.wait_for("document.querySelector('article.batch.has-errors') !== null")
        problem = page.evaluate(
            "(() => { const b = document.querySelector('article.batch.has-errors');"
            " return {user: b.closest('section').dataset.user,"
            " rules: [...b.querySelectorAll('li.problem.error')].map((p) => p.dataset.rule),"
            " text: b.querySelector('li.problem.error').textContent,"
            " flagged: b.querySelectorAll('tr.event.event-error').length}; })()"
        )
        assert problem["user"] == "customer_id:user-4"
        assert problem["rules"] == ["schema.required", "schema.type"]
        assert "custom_event_type" in problem["text"]
        assert problem["flagged"] == 1
        assert page.evaluate("document.getElementById('counter-problems').classList.contains('bad')")

        page.type_into("#filter-user", "USER-2")
        assert page.wait_for("document.querySelectorAll('section.user').length === 1")
        assert [s["user"] for s in _sections(page)] == ["customer_id:user-2"]
        assert "showing 1 of" in page.evaluate("document.getElementById('shown').textContent")

        page.type_into("#filter-user", "")
        page.type_into("#filter-event", "signed")
        assert page.wait_for("document.querySelectorAll('tr.event').length === 1")
        assert _sections(page) == [{"user": "customer_id:user-1", "events": ["Signed Up"]}]

        page.type_into("#filter-event", "")
        page.click("#filter-problems")
        assert page.wait_for("document.querySelectorAll('section.user').length === 1")
        assert [s["user"] for s in _sections(page)] == ["customer_id:user-4"]

        page.type_into("#filter-user", "nobody")
        assert page.wait_for("!document.getElementById('nomatch').hidden")

        shot = tmp_path / "inspector.png"
        page.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the README screenshot ----------------------------------------------------


def take_screenshot(path: Path) -> None:
    """Several users' events and one highlighted problem, as docs/inspector.png shows them."""
    binary = find_chromium()
    if binary is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    browser = Browser(binary)
    try:
        with DevServer(key=KEY, secret=SECRET) as server:
            send_demo_events(server.url)
            send_broken_batch(server.url)
            page = browser.open(server.url + "/", width=1280, height=900)
            total = len(server.batches())
            if not page.wait_for(f"document.getElementById('count-batches').textContent === '{total}'"):
                raise SystemExit("the page did not show the batches")
            page.screenshot(path)
    finally:
        browser.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, required=True, metavar="PNG")
    take_screenshot(parser.parse_args().screenshot)
    sys.exit(0)
