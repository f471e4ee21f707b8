"""ipywidgets pages for MOS and MUSHRA listening tests, driving :mod:`lpcnet.listening`.

``ListeningUI(session).widget`` is a VBox: title and instructions, progress
("trial 3 of 12"), one audio player per stimulus (HTML5 ``<audio controls>`` made by
``IPython.display.Audio``, 16 kHz, not normalised so levels stay comparable), the
rating (MOS: radio buttons 1..5; MUSHRA: one 0..100 slider per blind letter,
hidden reference included), Back / Next, and after the last trial a results
page with the summary table and the 95 % CI plot of every listener so far.
Every *Next* saves the answer through the session (atomic file write).
"""

from __future__ import annotations

import html
import io

import ipywidgets as widgets
import numpy as np
from IPython.display import Audio

from lpcnet.errors import LpcnetError
from lpcnet.listening import (MOS_LABELS, ListeningSession, format_summary, plot_summary,
                              summarize_results)

MOS_INSTRUCTIONS = ("Listen to the sample, then rate the <b>overall quality</b> of the speech "
                    "(ITU-T P.800 absolute category rating).")
MUSHRA_INSTRUCTIONS = ("Compare each lettered sample with the <b>Reference</b> and rate it 0-100. "
                       "One of them is the hidden reference: give it 100. "
                       "(ITU-R BS.1534 MUSHRA)")


def audio_html(x, rate: int = 16000) -> str:
    """``(samples,)`` float in [-1, 1] -> HTML ``<audio controls>`` with the wav embedded."""
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    return Audio(x, rate=rate, normalize=False)._repr_html_()


def figure_png(fig, dpi: int = 90) -> bytes:
    """matplotlib Figure -> PNG bytes (for an ipywidgets Image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class ListeningUI:
    """Widget page of one :class:`ListeningSession` (MOS or MUSHRA)."""

    def __init__(self, session: ListeningSession):
        self.session = session
        kind = session.kind.upper()
        text = MOS_INSTRUCTIONS if session.kind == "mos" else MUSHRA_INSTRUCTIONS
        self.title = widgets.HTML(f"<h3>{kind} listening test, listener "
                                  f"<code>{html.escape(session.listener)}</code></h3><p>{text}</p>")
        self.progress = widgets.Label()
        self.progress_bar = widgets.IntProgress(min=0, max=session.n_trials,
                                                layout=widgets.Layout(width="300px"))
        self.stimuli = widgets.VBox()
        self.status = widgets.Label()
        self.back_button = widgets.Button(description="Back", icon="arrow-left")
        self.next_button = widgets.Button(description="Next", icon="arrow-right",
                                          button_style="primary")
        self.back_button.on_click(self._on_back)
        self.next_button.on_click(self._on_next)
        self.results = widgets.VBox()
        self.radio = None
        self.sliders = []
        self.widget = widgets.VBox([
            self.title, widgets.HBox([self.progress, self.progress_bar]), self.stimuli,
            widgets.HBox([self.back_button, self.next_button]), self.status, self.results])
        self.render()

    # --- drawing -----------------------------------------------------------------------------
    def render(self) -> None:
        """Redraw for the session's current trial (or the results page when finished)."""
        s = self.session
        self.progress.value = s.progress()
        self.progress_bar.value = len(s.answers)
        self.back_button.disabled = s.index == 0
        if s.finished:
            self.stimuli.children = ()
            self.next_button.disabled = True
            self.radio, self.sliders = None, []
            self.show_results()
            return
        self.results.children = ()
        self.next_button.disabled = False
        self.next_button.description = "Finish" if s.index == s.n_trials - 1 else "Next"
        previous = s.current_answer()
        items = s.stimuli()
        if s.kind == "mos":
            label, x = items[0]
            self.radio = widgets.RadioButtons(
                options=[(f"{v}  {MOS_LABELS[v]}", v) for v in sorted(MOS_LABELS, reverse=True)],
                value=previous, description="Quality:")
            self.sliders = []
            self.stimuli.children = (widgets.HTML(audio_html(x, s.plan.rate)), self.radio)
        else:
            ref_label, ref = items[0]
            rows = [widgets.HBox([widgets.Label(ref_label, layout=widgets.Layout(width="90px")),
                                  widgets.HTML(audio_html(ref, s.plan.rate))])]
            self.sliders = []
            for (label, x), cond in zip(items[1:], s.current["slots"]):
                slider = widgets.IntSlider(value=int(previous[cond]) if previous else 0, min=0,
                                           max=100, step=1, description=f"{label}:",
                                           continuous_update=False,
                                           layout=widgets.Layout(width="420px"))
                self.sliders.append(slider)
                rows.append(widgets.HBox([widgets.Label(f"Sample {label}",
                                                        layout=widgets.Layout(width="90px")),
                                          widgets.HTML(audio_html(x, s.plan.rate)), slider]))
            self.radio = None
            self.stimuli.children = tuple(rows)

    def show_results(self) -> None:
        """Results page: summary table and CI plot of every listener's file so far."""
        s = self.session
        try:
            rows, excluded = summarize_results(s.path.parent, s.kind, s.plan.conditions)
        except LpcnetError as exc:
            self.results.children = (widgets.Label(str(exc)),)
            return
        note = (f"<p>Excluded by post-screening: {', '.join(excluded)}</p>" if excluded else "")
        table = html.escape(format_summary(rows, f"{s.kind.upper()} summary (all listeners)"))
        self.results.children = (
            widgets.HTML(f"<h4>Thank you: all trials answered.</h4>{note}<pre>{table}</pre>"),
            widgets.Image(value=figure_png(plot_summary(rows, s.kind)), format="png"))

    # --- handlers ----------------------------------------------------------------------------
    def current_rating(self):
        """The rating shown on screen: int 1..5 (MOS, None if not chosen) or slider list."""
        if self.session.kind == "mos":
            return None if self.radio is None else self.radio.value
        return [sl.value for sl in self.sliders]

    def _on_next(self, _button=None) -> None:
        rating = self.current_rating()
        if rating is None:
            self.status.value = "Choose a rating first."
            return
        try:
            self.session.answer(rating)
            self.session.next()
        except LpcnetError as exc:
            self.status.value = str(exc)
            return
        self.status.value = f"saved to {self.session.path.name}"
        self.render()

    def _on_back(self, _button=None) -> None:
        self.session.back()
        self.status.value = ""
        self.render()


def listening_page(plan, kind: str, listener: str, directory, seed: int = 0) -> ListeningUI:
    """Open (or resume) ``listener``'s session and build its page; display ``.widget``."""
    return ListeningUI(ListeningSession(plan, kind, listener, directory, seed))
