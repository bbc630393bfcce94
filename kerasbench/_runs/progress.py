"""Sweep progress: configuration i of n, elapsed time and an estimate of the time left.

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


class Progress:
    """Configuration i of n, elapsed and estimated time left.

    On a terminal: a tqdm bar, with a line per finished configuration printed
    above it. Otherwise: plain lines, one when a configuration starts and one
    when it ends. The estimate is the mean time of the finished
    configurations times the number left.
    """

    def __init__(self, total, enabled=True):
        self.total, self.enabled = total, enabled
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

    def start(self, config):
        self.index = self.done + 1
        if self._bar is not None:
            self._bar.set_description_str(config.label())
        elif self.enabled:
            print(f"[{self.index}/{self.total}] {config.label()}: running "
                  f"(elapsed {_clock(time.monotonic() - self.t0)}, about {self._eta()} left)",
                  flush=True)

    def finished(self, result, final=True):
        if result.ok:
            outcome = f"{result.images_per_sec:.1f} images/sec"
        else:
            outcome = f"{result.status.upper()}: {result.error}"
            if not final:
                outcome += f" (retrying at batch size {result.batch_size // 2})"
        asked = result.requested.backend if result.requested is not None else None
        line = (f"[{self.index}/{self.total}] {result.model} {result.mode} "
                f"bs{result.batch_size} {result.precision} {result.device or 'auto'}"
                + (f" {asked}" if asked else "") + f": {outcome}")
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
