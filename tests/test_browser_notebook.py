"""Notebook 05 in a real browser, as a listener meets it: JupyterLab from the kit's environment,
Debian Chromium driven by Playwright. Run all cells, take one MOS and one MUSHRA trial (play,
rate, submit), restart the kernel, run again, and find the ratings still there.

Needs ``chromium`` (apt; run_scripts/setup.sh installs it) and the ``playwright`` package
(pinned in requirements.txt; it drives the system browser, nothing is downloaded). Without
them the test is skipped, except in CI (``CI=true``), where it must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from lpcnet import labserver

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "05_listening_mos.ipynb"
LISTENER = "browser"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _needs(ok: bool, reason: str) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    _needs(Path(labserver.CHROMIUM).exists(), f"{labserver.CHROMIUM} not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _needs(False, "the playwright package is not installed (pip install -r requirements.txt)")
    return sync_playwright


def run_all(page, restart: bool = False, timeout_s: float = 90.0) -> None:
    """Run every cell (after a kernel restart when ``restart``) and wait until all are done.

    JupyterLab's command resolves once every cell has run (after its restart dialog is
    answered, as a listener would); its outcome is kept in ``window.__lpcnetRun``.
    """
    command = "notebook:restart-run-all" if restart else "notebook:run-all-cells"
    page.evaluate(f"""() => {{
        window.__lpcnetRun = "running";
        window.jupyterapp.commands.execute("{command}").then(
            ok => {{ window.__lpcnetRun = ok === false ? "stopped" : "done"; }},
            err => {{ window.__lpcnetRun = "failed: " + err; }});
    }}""")
    if restart:
        page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_function("window.__lpcnetRun !== 'running'", timeout=timeout_s * 1000, polling=500)
    state = page.evaluate("window.__lpcnetRun")
    prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputArea-prompt",
                                        "els => els.map(e => e.textContent.trim())")
    assert state == "done" and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), (state, prompts)


def check_rendered(page, timeout_s: float = 30.0) -> None:
    """Fail on any error output, or when a listening page has not rendered within ``timeout_s``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for kind in ("mos", "mushra"):
        try:
            page.wait_for_selector(f".lpcnet-{kind}-page .lpcnet-next", state="attached",
                                   timeout=timeout_s * 1000)
        except PlaywrightTimeout:
            raise AssertionError(f"the {kind.upper()} page did not render") from None
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                          ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    broken = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
    assert broken.count() == 0, broken.first.inner_text()[:500]
    for kind in ("mos", "mushra"):
        pane = page.locator(f".lpcnet-{kind}-page")
        assert pane.count() == 1, f"the {kind.upper()} page did not render"
        assert pane.locator(".lpcnet-play").count() >= 1 and pane.locator(".lpcnet-next").count() == 1


def status(pane) -> str:
    return pane.locator(".lpcnet-status").text_content().strip()


def wait_text(pane, selector: str, pattern: str, timeout_s: float = 15.0) -> str:
    """Wait until ``selector`` in ``pane`` shows text matching ``pattern``; return the text."""
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = pane.locator(selector).text_content().strip()   # also off screen
        if re.search(pattern, text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{selector}: {text!r} does not match {pattern!r}")


def wait_playing(player) -> None:
    """The <audio> behind a Play click exists and is playing (or has played)."""
    player.locator("audio").wait_for(state="attached", timeout=15000)
    deadline = time.time() + 15
    while time.time() < deadline:
        if player.locator("audio").evaluate("a => a.currentTime > 0 || a.ended"):
            return
        time.sleep(0.2)
    raise AssertionError("the sample did not start playing")


def take_mos_trial(page) -> None:
    pane = page.locator(".lpcnet-mos-page")
    pane.scroll_into_view_if_needed()
    assert wait_text(pane, ".lpcnet-progress", r"^trial 1 of \d+$")
    assert status(pane) == "Play the sample, then choose a rating."
    assert pane.locator("input[type=radio]").first.is_disabled()   # no rating before playing
    pane.locator(".lpcnet-play").click()
    wait_playing(pane.locator(".lpcnet-player"))
    wait_text(pane, ".lpcnet-status", r"^Choose a rating\.$")
    pane.locator(".widget-radio-box label", has_text="Good").first.click()
    wait_text(pane, ".lpcnet-status", r"^Rating 4 \(Good\) chosen: press Next")
    pane.locator(".lpcnet-next").click()
    wait_text(pane, ".lpcnet-progress", r"^trial 2 of \d+$")
    # the status is a separate widget update: it may arrive a moment after the progress line
    wait_text(pane, ".lpcnet-status", rf"^Saved to mos_{LISTENER}\.jsonl\.")


def take_mushra_trial(page) -> int:
    """Play every sample, set every slider near the top, submit; returns the number of sliders."""
    pane = page.locator(".lpcnet-mushra-page")
    pane.scroll_into_view_if_needed()
    assert wait_text(pane, ".lpcnet-progress", r"^trial 1 of \d+$")
    sliders = pane.locator(".lpcnet-slider")
    n = sliders.count()
    assert n >= 4
    pane.locator(".lpcnet-next").click()
    wait_text(pane, ".lpcnet-status", r"^Not saved: play sample\(s\) A, B")
    buttons = pane.locator(".lpcnet-play")
    assert buttons.count() == n + 1                       # the open reference + one per letter
    for i in range(n + 1):
        buttons.nth(i).click()
    wait_text(pane, ".lpcnet-status", r"^Move the slider of A, B")
    for i in range(n):
        track = sliders.nth(i).locator(".noUi-target")
        box = track.bounding_box()
        track.click(position={"x": box["width"] * 0.97, "y": box["height"] / 2})
        wait_text(sliders.nth(i), ".widget-readout", r"^\d+$")
    wait_text(pane, ".lpcnet-status", r"^Every sample rated: press Next to save\.$")
    pane.locator(".lpcnet-next").click()
    wait_text(pane, ".lpcnet-progress", r"^trial 2 of \d+$")
    return n


def test_listener_takes_mos_and_mushra_trials_and_ratings_survive_a_restart(sync_playwright, tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)     # the repository stays untouched
    env = {"LPCNET_NB_SMALL": "1", "LPCNET_LISTENER": LISTENER,
           "LPCNET_LISTENING_DIR": str(tmp_path / "listening")}
    with labserver.LabServer(root, env) as lab, sync_playwright() as pw:
        browser = labserver.launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        shot = tmp_path / "page.png"          # the browser's view when a check fails
        try:
            page.goto(lab.url(NOTEBOOK))
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=60000)
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session",
                                   timeout=60000)
            run_all(page)
            check_rendered(page)
            take_mos_trial(page)
            n_sliders = take_mushra_trial(page)

            run_all(page, restart=True)
            check_rendered(page)
            # the pages resume after the answered trials, and the results cell shows them
            assert wait_text(page.locator(".lpcnet-mos-page"), ".lpcnet-progress", r"^trial 2 of")
            assert wait_text(page.locator(".lpcnet-mushra-page"), ".lpcnet-progress", r"^trial 2 of")
            out = page.locator(".jp-Cell", has_text="summarize_results(TEST_DIR").locator(".jp-OutputArea")
            text = out.text_content()
            assert "MOS: 1 listener(s) x 1 utterance(s)" in text
            assert "MUSHRA: 1 listener(s) x 1 utterance(s)" in text and "excluded: nobody" in text
        except AssertionError as exc:
            page.screenshot(path=str(shot))
            raise AssertionError(f"{exc} (screenshot: {shot})") from None
        finally:
            browser.close()
    sessions = next((tmp_path / "listening").iterdir()) / "sessions"
    mos = [json.loads(x) for x in (sessions / f"mos_{LISTENER}.jsonl").read_text().splitlines()]
    mushra = [json.loads(x) for x in (sessions / f"mushra_{LISTENER}.jsonl").read_text().splitlines()]
    assert [r["rating"] for r in mos] == [4]
    assert len(mushra) == 1 and len(mushra[0]["ratings"]) == n_sliders
    assert all(v >= 90 for v in mushra[0]["ratings"].values())
