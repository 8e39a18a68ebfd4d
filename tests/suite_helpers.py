"""What tests in every folder share: honest skips, a loopback HTTP server, headless Chromium.

Importable as ``suite_helpers`` from tests/, tests/browser/ and tests/hub/ (tests/conftest.py
puts tests/ on sys.path; the name is not ``test_*`` so pytest does not collect it).

- ``require_or_skip(reason)``: skip a test whose prerequisite is missing, except in CI as
  root, where `make test` installs the prerequisites itself (apt-get, npm, the book build),
  so a missing one means that set-up failed: there the test fails instead of skipping,
  and `make test` cannot pass having run none of those tests.
- ``require_data(names)``: skip (never fail) when a data set cannot be had at all, judged
  by the library's own logic (``dlcourse.datasets.ensure``: cache, mirror, download).
- ``LoopbackServer``: a real ``http.server`` on 127.0.0.1 in a thread, recording the paths
  asked for.
- ``chromium()``: the system Chromium driven by Playwright, with the flags every browser
  test uses.
- ``n_params(module)``, ``on_meta(builder, ...)``: the model tests' parameter count (the
  trusted reference: every tensor's ``numel``) and a model built on the ``meta`` device, where
  a 100-million-parameter network costs no memory and no initialisation time.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Iterable, Iterator, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Flags for headless Chromium in a container: no sandbox (root, no user namespaces needed),
# no GPU, and none of the background traffic (updates, sync, QUIC) that would reach outside.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


# ---------------------------------------------------------------- honest skips
def in_ci_as_root() -> bool:
    """True when running as root under CI (``CI`` set to true/1/yes, as CI services do)."""
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return ci and hasattr(os, "geteuid") and os.geteuid() == 0


def require_or_skip(reason: str) -> NoReturn:
    """Skip with `reason`; in CI as root, fail with it (the Makefile's set-up should have provided it)."""
    if in_ci_as_root():
        pytest.fail(f"{reason}. In CI as root `make test` sets this up itself (system-deps, hub-deps, "
                    "vendor, the book build), so that set-up failed; this test does not skip here.",
                    pytrace=False)
    pytest.skip(reason)


def require_data(names: Iterable[str]) -> dict[str, str]:
    """Skip unless every registered data set in `names` can be had; return {name: source}.

    Uses ``dlcourse.datasets.ensure`` (cache, then the offline mirror, then a download), so a
    cached MNIST counts as available without the mirror. A data set that falls back to its
    bundled stand-in is unavailable: the test needs the real one.
    """
    from dlcourse.datasets import ensure

    with contextlib.redirect_stdout(io.StringIO()) as said:
        sources = ensure(list(names), progress=False)
    missing = [name for name, source in sources.items() if source.startswith("fallback:")]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, which cannot be had here: {said.getvalue().strip()}")
    return sources


# ---------------------------------------------------------------- loopback HTTP server
class NotFound(http.server.BaseHTTPRequestHandler):
    """Answers 404 to everything: with LoopbackServer, a network on which no download works
    (the server still records every path asked for)."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_error(404)

    do_HEAD = do_GET


class LoopbackServer:
    """A real ``http.server.ThreadingHTTPServer`` on 127.0.0.1 at a free port, in a thread.

    ``directory``: serve that folder (``handler`` must then be a SimpleHTTPRequestHandler,
    the default). ``handler``: the request handler class; handlers reach this object as
    ``self.server.owner`` (for per-server state a subclass adds). ``requests`` lists the
    path of every request answered, in order (recorded when its status line is sent, so
    404s count too). Use as a context manager: the server runs inside the ``with``.

        with LoopbackServer(directory=site) as server:
            urlopen(server.url + "/index.html")
            assert server.requests == ["/index.html"]
    """

    def __init__(self, directory: str | os.PathLike | None = None,
                 handler: type[http.server.BaseHTTPRequestHandler] = http.server.SimpleHTTPRequestHandler):
        requests: list[str] = []
        self.requests = requests
        self.directory = Path(directory) if directory is not None else None

        class Recording(handler):
            def log_request(self, code="-", size="-"):
                requests.append(self.path)

            def log_message(self, *args):  # keep test output clean
                pass

        factory = Recording if directory is None else functools.partial(Recording, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- models
def n_params(module) -> int:
    """Every parameter tensor's element count, summed (what the papers' tables count)."""
    return sum(p.numel() for p in module.parameters())


def on_meta(builder, *args, **kwargs):
    """`builder(*args, **kwargs)` with its tensors on the meta device: shapes and counts only."""
    import torch
    with torch.device("meta"):
        return builder(*args, **kwargs)


# ---------------------------------------------------------------- Chromium
def chromium_executable() -> str:
    """``$CHROMIUM``, else chromium on PATH, else /usr/bin/chromium; require_or_skip when absent."""
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        require_or_skip(f"Chromium is not installed at {executable} (apt-get install chromium, or `make system-deps`)")
    return executable


@contextlib.contextmanager
def chromium() -> Iterator["playwright.sync_api.Browser"]:  # noqa: F821 (imported lazily)
    """Headless system Chromium via Playwright, closed on exit (for a session or module fixture)."""
    executable = chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_or_skip("Playwright is not installed (it is in requirements.txt: `make venv`)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
