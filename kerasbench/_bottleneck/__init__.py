"""bottleneck(): does training wait on the input, the compute, or the host?

* `verdict`: the verdict and the shares of time lost, from three per-step
  times (pure arithmetic, the rules and their thresholds).
* `measure`: the three measurements on a real compiled model (input alone,
  the model on one batch on the device, both through ``fit``).
* `result`: `Bottleneck`, the frozen outcome; `text`: its plain-words summary.
* `run`: `bottleneck()` itself; `command`: ``kerasbench bottleneck``.

See docs/bottleneck.md.
"""

from kerasbench._bottleneck.result import Bottleneck
from kerasbench._bottleneck.run import bottleneck

__all__ = ["Bottleneck", "bottleneck"]
