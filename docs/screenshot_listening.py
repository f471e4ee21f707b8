"""Screenshot of the MOS listening page in JupyterLab -> docs/listening_mos.png.

Steps: write a two-cell notebook that shows ``lpcnet.listening_ui`` 's MOS page for the
held-out utterance; execute it with nbclient (the widget state is stored in the
notebook's metadata, which JupyterLab's widget manager restores when it opens the
file); start JupyterLab headless on a free localhost port with a random token; load
the notebook in headless Debian Chromium and save a screenshot; stop the server.

Needs ``chromium`` (Debian: ``apt-get install -y chromium``) and the kit's Python
environment (jupyterlab, ipywidgets, nbclient). Run from the repository root::

    python docs/screenshot_listening.py [--out docs/listening_mos.png]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]

CELLS = [
    "import os, sys\n"
    f"sys.path.insert(0, {str(ROOT)!r})\n"
    "from lpcnet import listening\n"
    "from lpcnet.audio import load_speech\n"
    "from lpcnet.listening_ui import listening_page\n"
    f"ref, _ = load_speech({str(ROOT / 'data' / 'slice' / 'arctic_a0007.wav')!r})\n"
    "plan = listening.build_plan({'a0007': ref[:48000]})",
    "page = listening_page(plan, 'mos', 'demo', 'results', seed=1)\n"
    "s = page.session\n"
    "s.answer(4); s.next(); s.answer(2); s.next()   # two trials answered: 'trial 3 of 3'\n"
    "page.render(); page.radio.value = 5\n"
    "page.widget",
]


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_notebook(folder: Path) -> Path:
    """Write and execute the MOS-page notebook in ``folder``; returns its path."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    for cell in nb.cells:               # show the page, not the code
        cell.metadata["jupyter"] = {"source_hidden": True}
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    NotebookClient(nb, timeout=120, store_widget_state=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    # trusted (signed with the server's secret): JupyterLab renders widgets only in trusted outputs
    from nbformat.sign import NotebookNotary

    (folder / "data").mkdir(exist_ok=True)
    NotebookNotary(data_dir=str(folder / "data")).sign(nb)
    path = folder / "listening_mos.ipynb"
    nbformat.write(nb, path)
    return path


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


WIDGET_READY_JS = ("!!document.querySelector('.widget-radio-box') && "
                   "!!document.querySelector('audio') && "
                   "document.querySelectorAll('.jp-Notebook .jp-Cell').length > 0")


HIDE_DISCONNECTED_JS = ("document.head.insertAdjacentHTML('beforeend', '<style>"
                        ".jupyter-widgets-disconnected::before{display:none !important}</style>')")


def capture(url: str, profile: Path, size: str, timeout_s: float) -> tuple[bytes, bool]:
    """Open ``url`` in headless Chromium, wait until the MOS widgets are drawn -> (PNG, drawn).

    Drives Chromium through the DevTools protocol (tornado's websocket client, a
    JupyterLab dependency): navigate, poll ``WIDGET_READY_JS``, capture the viewport.
    """
    import base64
    import json

    from tornado.ioloop import IOLoop
    from tornado.websocket import websocket_connect

    port = free_port()
    browser = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
         f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/json/version", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")

        async def session() -> tuple[bytes, bool]:
            ready = True
            ws = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=1 << 28)
            ids = iter(range(1, 1 << 30))

            async def call(method, **params):
                i = next(ids)
                await ws.write_message(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    msg = json.loads(await ws.read_message())
                    if msg.get("id") == i:
                        return msg.get("result", {})

            await call("Page.enable")
            await call("Page.navigate", url=url)
            deadline = time.time() + timeout_s
            while time.time() < deadline:
                r = await call("Runtime.evaluate", expression=WIDGET_READY_JS, returnByValue=True)
                if r.get("result", {}).get("value"):
                    break
                await asyncio.sleep(0.5)
            else:
                ready = False
            # restored from the notebook's saved state, the widgets carry ipywidgets'
            # "disconnected" mark (no live kernel model behind them): hide the mark
            await call("Runtime.evaluate", expression=HIDE_DISCONNECTED_JS)
            await asyncio.sleep(2.0)          # let the layout settle
            shot = await call("Page.captureScreenshot", format="png")
            ws.close()
            return base64.b64decode(shot["data"]), ready

        return IOLoop.current().run_sync(session)
    finally:
        stop(browser)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "listening_mos.png"))
    ap.add_argument("--size", default="1000,800", help="window size W,H in pixels")
    ap.add_argument("--wait-ms", type=int, default=90000, help="longest wait for the widgets (ms)")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="lpcnet_shot_") as tmp:
        tmp = Path(tmp)
        nb = make_notebook(tmp)
        port, token = free_port(), secrets.token_hex(16)
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "cfg"), JUPYTER_DATA_DIR=str(tmp / "data"),
                   JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"))
        settings = tmp / "settings"
        settings.mkdir()
        # no news / update notification over the page
        plugin = settings / "@jupyterlab" / "apputils-extension"
        plugin.mkdir(parents=True)
        (plugin / "notification.jupyterlab-settings").write_text(
            '{"checkForUpdates": false, "fetchNews": "false"}')
        env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
             f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}",
             "--ServerApp.open_browser=False", "--allow-root"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
        try:
            try:
                wait_for(f"http://127.0.0.1:{port}/api/status?token={token}")
            except RuntimeError:
                print((tmp / "server.log").read_text()[-2000:], file=sys.stderr)
                raise
            url = f"http://127.0.0.1:{port}/doc/tree/{nb.name}?reset&token={token}"
            png, ready = capture(url, tmp / "chromium", args.size, args.wait_ms / 1000)
            if not ready:
                failed = Path(args.out).with_suffix(".failed.png")
                failed.write_bytes(png)
                print(f"the MOS widgets did not appear within {args.wait_ms} ms; page saved as {failed}",
                      file=sys.stderr)
                return 1
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_bytes(png)
            print(f"wrote {args.out}")
        finally:
            stop(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
