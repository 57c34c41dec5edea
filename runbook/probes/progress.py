"""Progress bars for the churn probe window: tqdm in a terminal, tqdm.auto in a notebook.

The probes themselves only call a ``progress(ChurnProgress)`` callback; :class:`ProgressBar` is
one such callback. ``tqdm.auto`` draws a widget when ipywidgets is installed and falls back to a
text bar on stderr otherwise (its warning about the missing widget is silenced: the text bar is
fine). tqdm comes with papermill, and ws-runbook lists it itself.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from runbook.probes.churn import ChurnProgress


def _tqdm_class(notebook: bool | None) -> Any:
    if notebook is None:
        notebook = "ipykernel" in sys.modules
    if notebook:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
        return tqdm
    from tqdm import tqdm

    return tqdm


class ProgressBar:
    """A ``progress`` callback that draws the probe window in seconds, with the churn counters.

    ``notebook`` None picks tqdm.auto inside a Jupyter kernel and the plain text bar elsewhere.
    Call :meth:`close` when the probe is done (``probe_url`` does).
    """

    def __init__(self, duration_s: float, *, description: str = "probing",
                 notebook: bool | None = None, file: Any = None) -> None:
        tqdm = _tqdm_class(notebook)
        self.bar = tqdm(total=round(duration_s, 1), desc=description, unit="s", file=file,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix}",
                        mininterval=0.5, leave=True)

    def __call__(self, state: ChurnProgress) -> None:
        self.bar.n = round(min(state.elapsed_s, state.duration_s), 1)
        self.bar.set_postfix_str(f"open {state.open}, opened {state.opened}, "
                                 f"peer closes {state.closed_by_peer}, failed {state.failed}",
                                 refresh=False)
        self.bar.update(0)  # redraws at most every mininterval

    def close(self) -> None:
        self.bar.close()
