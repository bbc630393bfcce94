"""Sweep progress: run i of n, elapsed time and an estimate of the time left.

On a terminal a tqdm bar, with a line per finished run printed above it;
otherwise plain lines. Only what the user sees; no bookkeeping of results.
"""

from __future__ import annotations

import sys
import time


def _clock(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _interval_text(result):
    """`` +/- 1.2%``: the half-width of the run's 95 % interval, or ``""``."""
    from kerasbench._results.formatting import format_half_width
    from kerasbench._results.selection import run_interval

    interval = run_interval(result)
    return "" if interval is None else " " + format_half_width(interval.relative_half_width)


class Progress:
    """Configuration i of n, elapsed and estimated time left.

    On a terminal: a tqdm bar, with a line per finished configuration printed
    above it. Otherwise: plain lines, one when a configuration starts and one
    when it ends. The estimate is the mean time of the finished
    configurations times the number left.
    """

    def __init__(self, total, enabled=True, repeats=1):
        self.total, self.enabled, self.repeats = total, enabled, repeats
        self._repeat = ""
        self.done = 0
        self.t0 = time.monotonic()
        self._bar = None
        if enabled and total and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="config", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                        "[{elapsed}<{remaining}]")

    def _eta(self):
        if not self.done:
            return "unknown"
        return _clock((time.monotonic() - self.t0) / self.done * (self.total - self.done))

    def start(self, config, repeat=1):
        """Shows that ``config`` starts (its ``repeat``-th run of `repeats`)."""
        self.index = self.done + 1
        self._repeat = f" (run {repeat} of {self.repeats})" if self.repeats > 1 else ""
        if self._bar is not None:
            self._bar.set_description_str(config.label() + self._repeat)
        elif self.enabled:
            print(f"[{self.index}/{self.total}] {config.label()}{self._repeat}: running "
                  f"(elapsed {_clock(time.monotonic() - self.t0)}, about {self._eta()} left)",
                  flush=True)

    def finished(self, result, final=True):
        if result.ok:
            outcome = f"{result.images_per_sec:.1f} images/sec" + _interval_text(result)
        else:
            outcome = f"{result.status.upper()}: {result.error}"
            if not final:
                outcome += f" (retrying at batch size {result.batch_size // 2})"
        asked = result.requested.backend if result.requested is not None else None
        line = (f"[{self.index}/{self.total}] {result.model} {result.mode} "
                f"bs{result.batch_size} {result.precision} {result.device or 'auto'}"
                + (f" {asked}" if asked else "") + f"{self._repeat}: {outcome}")
        if final:
            self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line)
            if final:
                self._bar.update(1)
        else:
            print(f"{line} (elapsed {_clock(time.monotonic() - self.t0)}, "
                  f"about {self._eta()} left)", flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
