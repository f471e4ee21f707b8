"""Headless JupyterLab and Chromium for scripted browsers (tests/test_browser_notebook.py,
docs/screenshot_listening.py).

:class:`LabServer` starts JupyterLab with this Python (the kit's environment) on a free
localhost port with a random token and no browser, serving one folder, with its own
config, data, settings and workspace folders (no user kernels or extensions, no news
pop-up) and the application exposed as ``window.jupyterapp`` so that a script can run
JupyterLab commands. :func:`launch_chromium` opens the system's Debian ``chromium``
through Playwright (browser downloads are not needed).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lpcnet.errors import LpcnetError

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: Flags for a headless Chromium in a container: no sandbox (root), no GPU, no network
#: side traffic, and media may play without a prior user gesture.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Terminate a child process, killing it if it has not exited within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; raise LpcnetError on timeout or if ``proc`` exits."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LpcnetError(f"{url}: the server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise LpcnetError(f"{url}: no answer within {timeout_s:.0f} s")


class LabServer:
    """``with LabServer(root) as lab: lab.url("nb.ipynb")`` - JupyterLab serving ``root``.

    ``env`` adds environment variables (the kernels inherit them); the server's log
    goes to ``root/../<root name>.jupyter/server.log`` (:attr:`log`).
    """

    def __init__(self, root, env: dict | None = None, timeout_s: float = 60.0):
        self.root = Path(root).resolve()
        self.home = self.root.parent / f"{self.root.name}.jupyter"
        self.log = self.home / "server.log"
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.extra_env, self.timeout_s = dict(env or {}), timeout_s
        self.proc = None
        self._log_file = None

    def url(self, notebook: str = "", reset: bool = True, view: str = "lab") -> str:
        """Address of the page opening ``notebook`` (relative to root), token included.

        ``view`` "lab": the full JupyterLab; "doc": the single-document view.
        """
        path = f"/{view}/tree/{notebook}" if notebook else f"/{view}"
        return f"http://127.0.0.1:{self.port}{path}?{'reset&' if reset else ''}token={self.token}"

    def start(self) -> "LabServer":
        settings = self.home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            '{"checkForUpdates": false, "fetchNews": "false"}')
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(self.home / "config"),
                   JUPYTER_DATA_DIR=str(self.home / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(self.home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.home / "workspaces"), **self.extra_env)
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
             "--LabApp.expose_app_in_browser=True", "--allow-root"],
            env=env, stdout=subprocess.DEVNULL, stderr=self._log_file, cwd=self.root)
        try:
            wait_for(f"http://127.0.0.1:{self.port}/api/status?token={self.token}",
                     self.timeout_s, self.proc)
        except LpcnetError as exc:
            self.stop()
            raise LpcnetError(f"{exc}; server log: {self.log}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright, **options):
    """Headless system Chromium through Playwright (``playwright.sync_api``)."""
    if not Path(CHROMIUM).exists():
        raise LpcnetError(f"{CHROMIUM} not found: apt-get install -y chromium "
                          f"(run_scripts/setup.sh installs it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, **options)
