"""Feedback during training: a progress bar, log lines, or a callback (DESIGN.md §4).

Where a run shows its progress (``TrainConfig.progress``, default ``None`` = chosen here):

- on a terminal (stderr is a TTY): a tqdm bar;
- in Jupyter: a widget bar when ipywidgets is installed (``pip install fusemap[notebook]``), else
  a plain text bar; never tqdm's "IProgress not found" warning;
- elsewhere (R through reticulate, knitr, batch jobs and cluster logs): log lines through the
  ``fusemap`` logger at INFO: one when a phase starts, one when it ends, and one at most every
  :data:`LOG_EVERY_SECONDS` seconds in between;
- with a ``callback`` (and ``progress`` not ``True``): nothing built in; the callback gets one dict
  per epoch (:data:`CALLBACK_KEYS`) and draws its own bar (the R package does).

``progress=True`` forces a bar (even when stderr is not a terminal), ``progress=False`` shows
nothing. Log lines never break a running bar (they are written above it).

The ``fusemap`` logger is made visible by default: when neither it nor the root logger has a
handler (the user has not configured logging), a handler writing ``[fusemap] message`` to stderr
at INFO is attached to it. Configure logging yourself to change that, or silence it with
``logging.getLogger("fusemap").setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import time
from typing import Callable

log = logging.getLogger("fusemap")

LOG_EVERY_SECONDS = 10.0
"""In log-line mode, at most one progress line per this many seconds within a phase."""

PHASE_END_REASONS = {
    "patience": "stopped early (validation loss no longer improving)",
    "loss_plateau": "stopped early (validation loss improving by less than the plateau fraction)",
    "mixing_plateau": "stopped early (held-out sections no longer mixing further)",
    "max_epochs": "reached max_epochs",
}
"""What the phase-end line says for each rule that can end a phase (the trainer names the rule)."""

CALLBACK_KEYS = ("phase", "phase_name", "epoch", "max_epochs", "epochs_done", "epochs_total", "val_loss",
                 "seconds", "done")
"""The keys of the dict a training ``callback`` receives after every epoch (the R package reads them)."""


class _DefaultHandler(logging.StreamHandler):
    """The handler fusemap attaches when logging is unconfigured. Writes above running tqdm bars,
    and stays silent once the user configures the root logger (its handlers then show the records)."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("[fusemap] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:  # configured later: propagation shows the record there
            return
        try:
            from tqdm import tqdm as std_tqdm

            std_tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def ensure_log_handler() -> None:
    """Make the ``fusemap`` logger's INFO messages visible when the user has not configured logging."""
    if log.handlers or logging.getLogger().handlers:
        return
    log.addHandler(_DefaultHandler())
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython is then already imported)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def choose_mode(progress: bool | None, callback: Callable | None) -> str:
    """'bar', 'notebook', 'lines' or 'off' (module docstring)."""
    if progress is False or (progress is None and callback is not None):
        return "off"
    if in_notebook():
        return "notebook"
    if progress or sys.stderr.isatty():
        return "bar"
    return "lines"


def _bar_class(mode: str):
    from tqdm import tqdm as std_tqdm

    if mode == "notebook" and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    return std_tqdm


class Progress:
    """What :class:`fusemap.training.Trainer` reports to: the bar or lines, and the callback.

    ``names[p]`` names phase ``p`` (1 or 2); ``epochs_total`` starts as the number of phases times
    ``max_epochs`` and shrinks when a phase stops early, so it always bounds the run's epochs and
    equals ``epochs_done`` on the final report.
    """

    def __init__(self, *, mode: str, callback: Callable | None, n_phases: int, max_epochs: int,
                 names: dict[int, str], label: str = "fusemap"):
        self.mode = mode
        self.callback = callback
        self.n_phases = n_phases
        self.max_epochs = max_epochs
        self.names = names
        self.label = label
        self.t0 = time.perf_counter()
        self.bar = None
        self._last_line = self.t0
        self._reported = False
        self._redirect = contextlib.ExitStack()

    # -- bar ---------------------------------------------------------------------------------
    def open(self, epochs_done: int, epochs_total: int) -> "Progress":
        if self.mode in ("bar", "notebook"):
            import warnings

            from tqdm import TqdmWarning
            from tqdm.contrib.logging import logging_redirect_tqdm

            cls = _bar_class(self.mode)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TqdmWarning)
                try:
                    self.bar = cls(total=epochs_total, initial=epochs_done, desc=self.label, unit="epoch")
                except ImportError:  # a widget bar that cannot be drawn: text instead
                    from tqdm import tqdm as std_tqdm

                    self.bar = std_tqdm(total=epochs_total, initial=epochs_done, desc=self.label, unit="epoch")
            # records reaching console handlers of the root logger (the CLI's, a user's basicConfig) go
            # above the bar; fusemap's own default handler writes above it by itself
            root = logging.getLogger()
            if any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
                   for h in root.handlers):
                self._redirect.enter_context(logging_redirect_tqdm(loggers=[root]))
        return self

    def close(self) -> None:
        self._redirect.close()
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # -- events ------------------------------------------------------------------------------
    def phase_started(self, phase: int, epoch: int) -> None:
        if self.mode == "lines":
            where = f" (resumed at epoch {epoch})" if epoch else ""
            log.info("phase %d of %d (%s) started%s: at most %d epochs", phase, self.n_phases,
                     self.names[phase], where, self.max_epochs)
        elif self.bar is not None:
            self.bar.set_description(f"{self.label} {self.names[phase]}")
        self._last_line = time.perf_counter()

    def epoch_done(self, *, phase: int, epoch: int, epochs_done: int, epochs_total: int, val_loss: float,
                   recon: float, phase_ended: str | None, done: bool) -> None:
        """Report one finished epoch; ``phase_ended`` is None or the rule that ended the phase (a key
        of ``PHASE_END_REASONS``)."""
        now = time.perf_counter()
        seconds = now - self.t0
        if self.bar is not None:
            self.bar.total = epochs_total
            self.bar.n = epochs_done
            self.bar.set_postfix(phase=phase, recon=f"{recon:.3f}", val=f"{val_loss:.3f}", refresh=False)
            self.bar.refresh()
        elif self.mode == "lines":
            if phase_ended is not None:
                why = PHASE_END_REASONS[phase_ended]
                log.info("phase %d of %d (%s) ended after %d epochs, %s; validation loss %.4g; %.1f s so far",
                         phase, self.n_phases, self.names[phase], epoch, why, val_loss, seconds)
                self._last_line = now
            elif now - self._last_line >= LOG_EVERY_SECONDS:
                log.info("phase %d (%s): epoch %d of at most %d, validation loss %.4g; %.1f s so far",
                         phase, self.names[phase], epoch, self.max_epochs, val_loss, seconds)
                self._last_line = now
        self._call(phase=phase, epoch=epoch, epochs_done=epochs_done, epochs_total=epochs_total,
                   val_loss=val_loss, seconds=seconds, done=done)

    def finished(self, *, phase: int, epoch: int, epochs_done: int, val_loss: float) -> None:
        """After the loop: a callback that saw no epoch (a finished run resumed) still gets done=True."""
        if not self._reported:
            self._call(phase=phase, epoch=epoch, epochs_done=epochs_done, epochs_total=epochs_done,
                       val_loss=val_loss, seconds=time.perf_counter() - self.t0, done=True)

    def _call(self, *, phase, epoch, epochs_done, epochs_total, val_loss, seconds, done) -> None:
        if self.callback is None:
            return
        self._reported = True
        self.callback({"phase": int(phase), "phase_name": str(self.names[phase]), "epoch": int(epoch),
                       "max_epochs": int(self.max_epochs), "epochs_done": int(epochs_done),
                       "epochs_total": int(epochs_total), "val_loss": float(val_loss),
                       "seconds": float(seconds), "done": bool(done)})
