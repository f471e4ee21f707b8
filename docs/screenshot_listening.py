"""Screenshot of the MOS listening page in JupyterLab -> docs/listening_mos.png.

Steps: write a two-cell notebook that shows ``lpcnet.listening_ui`` 's MOS page for the
held-out speech (two trials answered, the third played and rated); execute it with
nbclient (the widget state is stored in the notebook's metadata, which JupyterLab's
widget manager restores when it opens the file); start JupyterLab headless
(:class:`lpcnet.labserver.LabServer`); load the notebook in headless Debian Chromium
through Playwright and save a screenshot; stop both.

Needs ``chromium`` (Debian: ``apt-get install -y chromium``) and the kit's Python
environment (jupyterlab, ipywidgets, nbclient, playwright). Run from the repository root::

    python docs/screenshot_listening.py [--out docs/listening_mos.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from lpcnet import labserver
from lpcnet.errors import LpcnetError

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    "from lpcnet import listening\n"
    "from lpcnet.listening_ui import listening_page\n"
    "speech = {u: str(p) for u, p in listening.heldout_speech(2).items()}\n"
    "plan = listening.build_plan(speech, level_db=-26)",
    "page = listening_page(plan, 'mos', 'demo', 'test', seed=1)\n"
    "s = page.session\n"
    "for rating in (4, 2):      # two trials answered\n"
    "    s.play('Sample'); s.answer(rating); s.next()\n"
    "page.render(); page.play('Sample'); page.radio.value = 5\n"
    "page.widget",
]
WIDGETS_DRAWN = ".lpcnet-mos-page .widget-radio-box"
# restored from the notebook's saved state, the widgets carry ipywidgets' "disconnected"
# mark (no live kernel model behind them): hide the mark
HIDE_DISCONNECTED = ".jupyter-widgets-disconnected::before{display:none !important}"


def make_notebook(folder: Path, data_dir: Path) -> Path:
    """Write and execute the MOS-page notebook in ``folder``, signed with ``data_dir``'s key."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.sign import NotebookNotary

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    for cell in nb.cells:               # show the page, not the code
        cell.metadata["jupyter"] = {"source_hidden": True}
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    NotebookClient(nb, timeout=120, store_widget_state=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    # trusted (signed with the server's secret): JupyterLab renders widgets only in trusted outputs
    data_dir.mkdir(parents=True, exist_ok=True)
    NotebookNotary(data_dir=str(data_dir)).sign(nb)
    path = folder / "listening_mos.ipynb"
    nbformat.write(nb, path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "listening_mos.png"))
    ap.add_argument("--size", default="1000,800", help="window size W,H in pixels")
    ap.add_argument("--wait-ms", type=int, default=90000, help="longest wait for the widgets (ms)")
    args = ap.parse_args(argv)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    width, height = (int(v) for v in args.size.split(","))
    with tempfile.TemporaryDirectory(prefix="lpcnet_shot_") as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        try:
            with labserver.LabServer(root) as lab:
                nb = make_notebook(root, lab.home / "data")
                with sync_playwright() as pw:
                    browser = labserver.launch_chromium(pw)
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(lab.url(nb.name, view="doc"))
                    try:
                        page.wait_for_selector(WIDGETS_DRAWN, timeout=args.wait_ms)
                    except PlaywrightTimeout:
                        failed = Path(args.out).with_suffix(".failed.png")
                        page.screenshot(path=str(failed))
                        print(f"the MOS widgets did not appear within {args.wait_ms} ms; page "
                              f"saved as {failed}", file=sys.stderr)
                        return 1
                    page.add_style_tag(content=HIDE_DISCONNECTED)
                    time.sleep(2.0)             # let the layout settle
                    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=args.out)
                    browser.close()
        except LpcnetError as exc:
            print(exc, file=sys.stderr)
            return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
