"""A headless Chromium driven over plain W3C WebDriver HTTP (chromedriver; no selenium needed),
for the tests of the evaluation report page. Debian: `apt-get install -y chromium
chromium-driver`. `find_browser()` says why a test must skip when either is missing.

The browser runs with the flags a closed network and root need (no sandbox, no GPU, no QUIC,
no first-run, background networking, component updates or sync) and a new empty profile.
"""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')
DRIVERS = ('chromedriver', 'chromium-driver')
CHROME_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-dev-shm-usage')
ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'   # the W3C key of an element reference


def find_browser() -> tuple[str | None, str | None, str]:
    """(browser path, driver path, reason) — the reason says what is missing ('' when both
    are installed)."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None)
    missing = [name for name, path in (('chromium', browser), ('chromium-driver', driver))
               if path is None]
    reason = (f'no headless browser: {" and ".join(missing)} not installed (Debian: apt-get '
              'install -y chromium chromium-driver)') if missing else ''
    return browser, driver, reason


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Browser:
    """One headless Chromium session: `open`, `run` JavaScript, `click`, `screenshot`."""

    def __init__(self, browser: str, driver: str, *, width: int = 1280, height: int = 1000,
                 timeout: float = 60.0):
        self.port = _free_port()
        self.base = f'http://127.0.0.1:{self.port}'
        self.profile = tempfile.mkdtemp(prefix='cenet-chromium-')
        self.timeout = timeout
        self.driver = subprocess.Popen([driver, f'--port={self.port}'], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        try:
            self._wait_ready()
            args = [*CHROME_FLAGS, f'--user-data-dir={self.profile}',
                    f'--window-size={width},{height}']
            session = self._call('POST', '/session', {'capabilities': {'alwaysMatch': {
                'browserName': 'chrome', 'goog:chromeOptions': {'binary': browser, 'args': args}}}})
            self.session = session['sessionId']
        except Exception:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self._call('GET', '/status').get('ready'):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f'chromedriver did not start on port {self.port}')

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b'{}').get('value')
        except urllib.error.HTTPError as err:
            raise RuntimeError(f'WebDriver {method} {path}: {err.read().decode()[:500]}') from err

    def open(self, path: str | Path) -> None:
        """Load a local file."""
        self._call('POST', f'/session/{self.session}/url', {'url': Path(path).resolve().as_uri()})

    def run(self, script: str, *args: Any) -> Any:
        """The value of a JavaScript function body (`return ...`) run in the page."""
        return self._call('POST', f'/session/{self.session}/execute/sync',
                          {'script': script, 'args': list(args)})

    def click(self, css: str) -> None:
        """Click the first element matching a CSS selector."""
        element = self._call('POST', f'/session/{self.session}/element',
                             {'using': 'css selector', 'value': css})[ELEMENT]
        self._call('POST', f'/session/{self.session}/element/{element}/click', {})

    def screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the visible page."""
        png = base64.b64decode(self._call('GET', f'/session/{self.session}/screenshot'))
        Path(path).write_bytes(png)
        return Path(path)

    def close(self) -> None:
        """End the session, the driver and the browser; remove the profile."""
        try:
            if getattr(self, 'session', None):
                self._call('DELETE', f'/session/{self.session}')
        except Exception:   # the driver may already be gone
            pass
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
