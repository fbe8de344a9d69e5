"""Open a page in headless Chromium as a person's browser would, and report what it did.

Drives Debian's ``chromium`` over the DevTools protocol (a websocket, ``websockets`` is
installed with Prefect): loads the page, records every request it made, and reads each
image's natural size once the page has loaded. Host names resolve to nothing
(``--host-resolver-rules``), so a page that tries the network fails there, and the
recorded requests still show that it tried.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

from websockets.sync.client import connect

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PageVisit(NamedTuple):
    """What the browser saw of one page."""

    requests: list[str]
    """URL of every request the page made, in order (the page itself first)."""
    images: list[dict[str, Any]]
    """Per ``<img>``: src scheme, complete, naturalWidth, naturalHeight."""
    title: str


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


def _debugging_port(profile: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with code {process.returncode}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its debugging port")


def visit(url: str, binary: str, timeout: float = 60.0) -> PageVisit:
    """Load ``url`` in a fresh headless Chromium; return its requests and images."""
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _debugging_port(Path(profile), process, timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            return _drive(page["webSocketDebuggerUrl"], url, timeout)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _drive(socket_url: str, url: str, timeout: float) -> PageVisit:
    requests: list[str] = []
    with connect(socket_url, max_size=None, open_timeout=timeout) as ws:
        counter = iter(range(1, 1_000_000))

        def call(method: str, **params: Any) -> dict[str, Any]:
            ident = next(counter)
            ws.send(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv(timeout=timeout))
                _record(message, requests)
                if message.get("id") == ident:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})

        call("Network.enable")
        call("Page.enable")
        call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=timeout))
            _record(message, requests)
            if message.get("method") == "Page.loadEventFired":
                break
        else:
            raise TimeoutError(f"{url} did not finish loading")
        script = (
            "JSON.stringify({title: document.title, images: Array.from(document.images).map("
            "i => ({scheme: i.src.split(':')[0], complete: i.complete, "
            "naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}))})"
        )
        result = call("Runtime.evaluate", expression=script, returnByValue=True)
        seen = json.loads(result["result"]["value"])
    return PageVisit(requests, seen["images"], seen["title"])


def _record(message: dict[str, Any], requests: list[str]) -> None:
    if message.get("method") == "Network.requestWillBeSent":
        requests.append(message["params"]["request"]["url"])
