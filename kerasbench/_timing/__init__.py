"""Pure timing: what kerasbench computes from clock readings and counts.

The package owns the statistics of step times and throughput (`stats`: every
formula, `StepStats`, `summarize`), the meter that turns the clock readings
and sample counts of one phase into a `ThroughputResult` (`meter`:
`PhaseMeter`, warmup and epoch-boundary rules) and the progress lines and
summaries printed to stdout (`text`). It reads no clock and imports neither
Keras nor TensorFlow: `kerasbench._callback` reads the clock and the counters
inside Keras loops and hands the numbers to it, so everything here runs and
is tested with plain numbers.
"""

from kerasbench._timing.meter import PhaseMeter, ThroughputResult
from kerasbench._timing.stats import StepStats, summarize

__all__ = ["PhaseMeter", "StepStats", "ThroughputResult", "summarize"]
