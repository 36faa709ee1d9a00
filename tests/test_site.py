"""The course site, in a real browser: headless Chromium loads the built pages.

The site is built once per session in the fast setting (the index, the notation page and
lesson 5, by ``tools/build_site.py``), or taken ready-made from the folder named by
``SCRATCHVAE_SITE_DIR`` (CI builds the whole site first and points the test at it). Then
Debian's ``chromium`` (headless, driven over the DevTools protocol with the
``websocket-client`` package) opens the index and lesson 5 from ``file://`` and the tests
check that

- every equation was typeset: each ``.math`` element holds MathJax's output (an
  ``mjx-container`` with an SVG inside) and none holds a TeX error (``mjx-merror``);
- every figure of lesson 5 loaded;
- no request left the site: every URL the page requested is a file inside the site folder
  (or a ``data:``/``blob:`` URL), never another host.

Skips, with the reason, where Chromium or the ``site`` extra is missing, unless
``SCRATCHVAE_REQUIRE_BROWSER=1`` (CI sets it), which turns those skips into failures.
Also checked, without a browser: every lesson's first cell installs scratchvae from the
repository that the site's Colab and Binder links name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("SCRATCHVAE_REQUIRE_BROWSER", "0") == "1"
PAGES = ("index.html", "lessons/05_vae.html")


def _missing(reason: str):
    if REQUIRE:
        pytest.fail(f"{reason} (SCRATCHVAE_REQUIRE_BROWSER=1 asks for the browser test)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# ---- the site, built once -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def site_dir(tmp_path_factory) -> Path:
    given = os.environ.get("SCRATCHVAE_SITE_DIR")
    if given:
        path = Path(given)
        if not (path / "index.html").is_file():
            pytest.fail(f"SCRATCHVAE_SITE_DIR={given} holds no built site (no index.html)")
        return path
    if chromium_path() is None:
        _missing("chromium is not installed (apt-get install -y chromium); the site test needs a browser")
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme", "mathjax", "websocket")
               if importlib.util.find_spec(m) is None]
    if missing:
        _missing(f"the site extra is not installed ({', '.join(missing)} missing): "
                 "python -m pip install -e \".[site]\"")
    out = tmp_path_factory.mktemp("site") / "html"
    cmd = [sys.executable, str(ROOT / "tools" / "build_site.py"), "--fast", "--out", str(out),
           str(ROOT / "lessons" / "05_vae.ipynb")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"build_site failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return out


# ---- a small DevTools-protocol client ------------------------------------------------------------

class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path):
        import websocket  # websocket-client, in the site extra

        exe = chromium_path()
        if exe is None:
            _missing("chromium is not installed (apt-get install -y chromium); the site test needs a browser")
        args = [exe, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--mute-audio",
                "--host-resolver-rules=MAP * ~NOTFOUND",   # belt and braces: no name resolves
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,1400"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")            # Chromium refuses to run as root with its sandbox
        self.log = open(profile / "chromium.log", "w")      # a file, not a pipe that could fill up
        self.proc = subprocess.Popen(args + ["about:blank"], stdout=subprocess.DEVNULL, stderr=self.log)
        port = self._port(profile)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id, self.events = 0, []

    def _port(self, profile: Path) -> int:
        deadline = time.time() + 30
        port_file = profile / "DevToolsActivePort"
        while time.time() < deadline:
            if port_file.is_file():
                lines = port_file.read_text().split()
                if lines:
                    return int(lines[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: "
                                   f"{(profile / 'chromium.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60.0):
        deadline = time.time() + timeout
        for i, msg in enumerate(self.events):
            if msg.get("method") == method:
                return self.events.pop(i)
        self.ws.settimeout(1.0)
        try:
            while time.time() < deadline:
                try:
                    msg = json.loads(self.ws.recv())
                except Exception:  # a 1-s receive timeout: keep waiting
                    continue
                if msg.get("method") == method:
                    return msg
                self.events.append(msg)
        finally:
            self.ws.settimeout(30)
        raise TimeoutError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str, await_promise: bool = False):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def requests(self) -> list[str]:
        return [m["params"]["request"]["url"] for m in self.events if m.get("method") == "Network.requestWillBeSent"]

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()


TYPESET = """
(async () => {
  if (!window.MathJax || !MathJax.startup) return {mathjax: false};
  await MathJax.startup.promise;
  const math = [...document.querySelectorAll('.math')];
  return {
    mathjax: true,
    math: math.length,
    typeset: math.filter(e => e.querySelector('mjx-container svg')).length,
    containers: document.querySelectorAll('mjx-container').length,
    errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent).slice(0, 5),
    images: [...document.querySelectorAll('img')].filter(i => i.src.includes('/_images/')).length,
    broken: [...document.querySelectorAll('img')].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
  };
})()
"""


@pytest.fixture(scope="module")
def pages(site_dir, tmp_path_factory):
    """Each page of PAGES loaded in Chromium: what it shows, and every URL it requested."""
    if chromium_path() is None:
        _missing("chromium is not installed (apt-get install -y chromium); the site test needs a browser")
    if importlib.util.find_spec("websocket") is None:
        _missing("websocket-client is not installed: python -m pip install -e \".[site]\"")
    seen = {}
    for page in PAGES:
        browser = Browser(tmp_path_factory.mktemp("chromium-profile"))
        try:
            browser.call("Network.enable")
            browser.call("Page.enable")
            url = (site_dir / page).resolve().as_uri()
            browser.call("Page.navigate", url=url)
            browser.wait_for("Page.loadEventFired", timeout=60)
            state = browser.evaluate(TYPESET, await_promise=True)
            time.sleep(0.5)                                  # let late requests show up
            browser.evaluate("1")                            # and drain the events
            seen[page] = (state, browser.requests())
        finally:
            browser.close()
    return seen


@pytest.mark.parametrize("page", PAGES)
def test_equations_are_rendered(pages, page):
    state, _ = pages[page]
    assert state["mathjax"], f"{page}: MathJax did not load (is _static/mathjax/ in the site?)"
    assert state["math"] > 0, f"{page}: no equation found on the page"
    assert state["typeset"] == state["math"], (
        f"{page}: {state['math'] - state['typeset']} of {state['math']} equations were not typeset")
    assert state["errors"] == [], f"{page}: MathJax reports TeX errors: {state['errors']}"


def test_lesson_figures_load(pages):
    state, _ = pages["lessons/05_vae.html"]
    assert state["images"] >= 5, f"lesson 5 shows {state['images']} figures"
    assert state["broken"] == [], f"images that did not load: {state['broken']}"


@pytest.mark.parametrize("page", PAGES)
def test_no_request_leaves_the_site(pages, page, site_dir):
    _, urls = pages[page]
    root = site_dir.resolve().as_uri().rstrip("/") + "/"
    assert urls, f"{page}: no request was recorded (is the DevTools Network domain working?)"
    outside = [u for u in urls if not (u.startswith(root) or u.startswith(("data:", "blob:")))]
    assert outside == [], f"{page} requested {len(outside)} URL(s) outside the site: {outside[:10]}"
    assert any(re.search(r"/_static/mathjax/[^/]+\.js(\?|$)", u) for u in urls), (
        f"{page}: MathJax was not loaded from the site")


# ---- without a browser ------------------------------------------------------------------------------

def test_install_cell_names_the_sites_repository():
    """Every lesson's first cell installs scratchvae on Colab/Binder, from the repository the
    site's links point to, and only there."""
    conf = (ROOT / "site" / "conf.py").read_text(encoding="utf-8")
    repo = re.search(r'^DEFAULT_REPO_URL\s*=\s*"([^"]+)"', conf, re.M).group(1)
    lessons = sorted((ROOT / "lessons").glob("*.ipynb"))
    assert lessons
    for nb_path in lessons:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        first = "".join(nb["cells"][0]["source"])
        assert "google.colab" in first and "BINDER_" in first, (
            f"{nb_path.name}: the first cell must install scratchvae on Colab and Binder "
            "(copy the first lines of lessons/05_vae.ipynb's first cell)")
        assert f"git+{repo}" in first, f"{nb_path.name}: the install cell must name {repo} (site/conf.py)"
