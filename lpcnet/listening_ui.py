"""ipywidgets pages for MOS and MUSHRA listening tests, driving :mod:`lpcnet.listening`.

``ListeningUI(session).widget`` is a VBox: title and instructions, progress
("trial 3 of 12"), one *Play* button per stimulus (the click marks the sample as
played in the session and puts an HTML5 ``<audio controls autoplay>`` player beside it,
16 kHz, not normalised so levels stay comparable), the rating (MOS: radio buttons
1..5; MUSHRA: one 0..100 slider per blind letter, hidden reference included), each
enabled only once its sample was played, Back / Next, a status line that always
says what is missing, and after the last trial a results page with the summary
table and the 95 % CI plot of every listener of the folder. Every *Next* saves the
answer through the session (atomic file write). Widgets carry ``lpcnet-*`` CSS
classes (page, play, slider, next, status, ...) for browser tests.
"""

from __future__ import annotations

import html
import io
import itertools

import ipywidgets as widgets
import numpy as np
from IPython.display import Audio

from lpcnet.errors import LpcnetError
from lpcnet.listening import MOS_LABELS, ListeningSession
from lpcnet.listening_results import format_results, plot_results, summarize_results

MOS_INSTRUCTIONS = ("Press <b>Play</b>, listen to the sample, then rate the <b>overall quality</b> "
                    "of the speech (ITU-T P.800 absolute category rating).")
MUSHRA_INSTRUCTIONS = ("Play the <b>Reference</b> and every lettered sample, then rate each letter "
                       "0-100 against the reference. One of them is the hidden reference: give it "
                       "100. Every slider must be moved. (ITU-R BS.1534 MUSHRA)")
_nonce = itertools.count()


def audio_html(x, rate: int = 16000, autoplay: bool = False) -> str:
    """``(samples,)`` float in [-1, 1] -> HTML ``<audio controls>`` with the wav embedded.

    Each call's HTML differs (a counter), so assigning it again restarts playback.
    """
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    player = Audio(x, rate=rate, normalize=False, autoplay=autoplay)._repr_html_()
    return f'<div class="lpcnet-player" data-n="{next(_nonce)}">{player}</div>'


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
        self.progress = widgets.Label().add_class("lpcnet-progress")
        self.progress_bar = widgets.IntProgress(min=0, max=session.n_trials,
                                                layout=widgets.Layout(width="300px"))
        self.stimuli = widgets.VBox()
        self.status = widgets.Label().add_class("lpcnet-status")
        self.back_button = widgets.Button(description="Back", icon="arrow-left").add_class("lpcnet-back")
        self.next_button = widgets.Button(description="Next", icon="arrow-right",
                                          button_style="primary").add_class("lpcnet-next")
        self.back_button.on_click(self._on_back)
        self.next_button.on_click(self._on_next)
        self.results = widgets.VBox().add_class("lpcnet-results")
        self.radio = None
        self.sliders = {}          # label -> IntSlider (MUSHRA)
        self.players = {}          # label -> HTML holding the audio player once played
        self.play_buttons = {}     # label -> Button
        self.moved = set()         # MUSHRA labels whose slider was moved in this trial
        self.widget = widgets.VBox([
            self.title, widgets.HBox([self.progress, self.progress_bar]), self.stimuli,
            widgets.HBox([self.back_button, self.next_button]), self.status, self.results])
        self.widget.add_class(f"lpcnet-{session.kind}-page")
        self.render()

    # --- drawing -----------------------------------------------------------------------------
    def render(self, notice: str = "") -> None:
        """Redraw for the session's current trial (or the results page when finished)."""
        s = self.session
        self.progress.value = s.progress()
        self.progress_bar.value = len(s.answers)
        self.back_button.disabled = s.index == 0
        self.radio, self.sliders, self.players, self.play_buttons = None, {}, {}, {}
        self.moved = set()
        if s.finished:
            self.stimuli.children = ()
            self.next_button.disabled = True
            self.update_status(notice)
            self.show_results()
            return
        self.results.children = ()
        self.next_button.disabled = False
        self.next_button.description = "Finish" if s.index == s.n_trials - 1 else "Next"
        previous = s.current_answer()
        rows = []
        for label in s.labels():
            name = label if label in ("Sample", "Reference") else f"Sample {label}"
            cells = [widgets.Label(name, layout=widgets.Layout(width="90px")),
                     self._play_button(label), self._player(label)]
            if s.kind == "mushra" and label != "Reference":
                cells.append(self._slider(label, previous))
            rows.append(widgets.HBox(cells))
        if s.kind == "mos":
            self.radio = widgets.RadioButtons(
                options=[(f"{v}  {MOS_LABELS[v]}", v) for v in sorted(MOS_LABELS, reverse=True)],
                value=previous, description="Quality:", disabled=not s.played("Sample"))
            self.radio.add_class("lpcnet-rating")
            self.radio.observe(lambda _change: self.update_status(), names="value")
            rows.append(self.radio)
        self.stimuli.children = tuple(rows)
        self.update_status(notice)

    def _play_button(self, label: str) -> widgets.Button:
        b = widgets.Button(description="Play", icon="play", layout=widgets.Layout(width="80px"),
                           tooltip=f"play {label}").add_class("lpcnet-play")
        b.on_click(lambda _b: self.play(label))
        self.play_buttons[label] = b
        return b

    def _player(self, label: str) -> widgets.HTML:
        self.players[label] = widgets.HTML(layout=widgets.Layout(min_width="310px"))
        return self.players[label]

    def _slider(self, label: str, previous) -> widgets.IntSlider:
        slot = self.session.current["slots"][ord(label) - 65]
        rated = previous is not None
        slider = widgets.IntSlider(value=int(previous[slot]) if rated else 0, min=0, max=100,
                                   step=1, description=f"{label}:", continuous_update=False,
                                   readout=rated, disabled=not self.session.played(label),
                                   layout=widgets.Layout(width="420px")).add_class("lpcnet-slider")
        if rated:
            self.moved.add(label)
        slider.observe(lambda _change: self._on_slider(label), names="value")
        self.sliders[label] = slider
        return slider

    def show_results(self) -> None:
        """Results page: summary table and CI plot of every listener's file so far.

        When they cannot be summarised (e.g. a bad record in some listener's file), the
        one-line reason is shown on the page and in the status line.
        """
        s = self.session
        try:
            res = summarize_results(s.test_dir, s.kind, s.plan.conditions)
        except LpcnetError as exc:
            self.results.children = (widgets.Label(str(exc)).add_class("lpcnet-results-error"),)
            self.status.value = f"{self.status.value} Results not shown: {exc}".strip()
            return
        table = html.escape(format_results(res))
        self.results.children = (
            widgets.HTML(f"<h4>Thank you: all trials answered.</h4><pre>{table}</pre>"),
            widgets.Image(value=figure_png(plot_results(res)), format="png"))

    # --- state -------------------------------------------------------------------------------
    def current_rating(self):
        """The rating on screen: MOS int 1..5 or None; MUSHRA list per slot, None = not moved."""
        if self.session.kind == "mos":
            return None if self.radio is None else self.radio.value
        return [self.sliders[lab].value if lab in self.moved else None
                for lab in self.session.required_plays()]

    def guidance(self) -> str:
        """What the listener has to do next, from the session and the widgets' state."""
        s = self.session
        if s.finished:
            return f"All {s.n_trials} trials answered and saved."
        action = "Finish" if s.index == s.n_trials - 1 else "Next"
        missing = s.unplayed()
        if s.kind == "mos":
            if missing:
                return "Play the sample, then choose a rating."
            if self.radio.value is None:
                return "Choose a rating."
            return f"Rating {self.radio.value} ({MOS_LABELS[self.radio.value]}) chosen: press {action} to save it."
        if missing:
            return f"Play sample(s) {', '.join(missing)}, then rate each one with its slider."
        unmoved = [lab for lab in s.required_plays() if lab not in self.moved]
        if unmoved:
            return f"Move the slider of {', '.join(unmoved)} (every sample needs a rating)."
        return f"Every sample rated: press {action} to save."

    def update_status(self, notice: str = "") -> None:
        self.status.value = f"{notice} {self.guidance()}".strip()

    # --- handlers ----------------------------------------------------------------------------
    def play(self, label: str) -> None:
        """Play ``label`` (the Play button): marks it played, shows the player, enables rating."""
        s = self.session
        if s.finished:
            return
        x = s.play(label)
        self.players[label].value = audio_html(x, s.plan.rate, autoplay=True)
        self.play_buttons[label].description = "Again"
        if s.kind == "mos":
            self.radio.disabled = False
        elif label in self.sliders:
            self.sliders[label].disabled = False
        self.update_status()

    def _on_slider(self, label: str) -> None:
        self.moved.add(label)
        self.sliders[label].readout = True
        self.update_status()

    def _on_next(self, _button=None) -> None:
        s = self.session
        if s.finished:           # e.g. a second click on Finish: nothing left to do
            return
        try:
            s.answer(self.current_rating())
            s.next()
        except LpcnetError as exc:
            self.status.value = f"Not saved: {exc}."
            return
        self.render(f"Saved to {s.path.name}.")

    def _on_back(self, _button=None) -> None:
        self.session.back()
        self.render()


def listening_page(plan, kind: str, listener: str, test_dir, seed: int = 0) -> ListeningUI:
    """Open (or resume) ``listener``'s session in ``test_dir`` and build its page; display ``.widget``."""
    return ListeningUI(ListeningSession(plan, kind, listener, test_dir, seed))
