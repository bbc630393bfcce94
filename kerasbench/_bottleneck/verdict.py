"""The verdict of a bottleneck run, from three per-step times: pure arithmetic.

The three times are seconds per step (one batch) of:

* ``input_step_s``: the input pipeline alone (making a batch, nothing else);
* ``compute_step_s``: the model's train step on one batch already on the
  device (what the compute can do);
* ``fit_step_s``: the two together, as `model.fit` runs them.

Every step of ``fit`` does the compute, so the time it spends beyond
``compute_step_s`` is lost::

    lost_s     = max(0, fit_step_s - compute_step_s)
    lost_share = lost_s / fit_step_s                = 1 - fit rate / compute rate

The input can explain at most ``input_step_s`` of that loss (when making a
batch is not overlapped with the compute at all); what the input cannot
explain is host overhead between steps (Python, callbacks, copies, waiting on
the device)::

    input_lost_s    = min(lost_s, input_step_s)
    overhead_lost_s = lost_s - input_lost_s

The verdict (docs/bottleneck.md, "The verdict"):

1. ``compute-bound`` when ``lost_share < LOST_SHARE_THRESHOLD``: fit runs
   within 10 % of what the compute alone does.
2. else ``input-bound`` when ``input_lost_s >= overhead_lost_s``: waiting for
   data explains most of the loss;
3. else ``host-overhead``.
"""

from __future__ import annotations

import dataclasses

from kerasbench import _validate

#: Below this share of fit's time lost, the run is compute-bound. The three
#: figures are measured one after the other, and identical runs differ by
#: 5-15 % on a shared machine (docs/performance.md): a smaller gap could be
#: noise, and the remedies below are not worth their trouble for less.
LOST_SHARE_THRESHOLD = 0.10

INPUT_BOUND = "input-bound"
COMPUTE_BOUND = "compute-bound"
HOST_OVERHEAD = "host-overhead"
VERDICTS = (INPUT_BOUND, COMPUTE_BOUND, HOST_OVERHEAD)

#: The usual remedies of each verdict, in the order worth trying.
REMEDIES = {
    INPUT_BOUND: (
        "prefetch: dataset.prefetch(tf.data.AUTOTUNE), so batches are made while the "
        "model computes",
        "parallel map: dataset.map(f, num_parallel_calls=tf.data.AUTOTUNE), or "
        "PyDataset(workers=N, use_multiprocessing=True)",
        "cache: dataset.cache() after the expensive, deterministic steps (decoding, "
        "resizing)",
    ),
    COMPUTE_BOUND: (
        "larger batch, if the device is not yet full (images/sec usually rises with it)",
        "mixed precision: keras.mixed_precision.set_global_policy('mixed_bfloat16') "
        "('mixed_float16' on GPUs)",
        "XLA: model.compile(..., jit_compile=True)",
    ),
    HOST_OVERHEAD: (
        "steps_per_execution: model.compile(..., steps_per_execution=N) runs N steps per "
        "call, so the per-step host work is paid once per N",
        "larger batch: fewer steps for the same images, so less overhead per image",
        "fewer per-batch callbacks and logging (verbose=2 prints once per epoch)",
    ),
}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What the three per-step times say.

    Attributes:
        verdict: ``"input-bound"``, ``"compute-bound"`` or ``"host-overhead"``.
        lost_share: Share of fit's time not spent computing, in [0, 1).
        input_lost_share: The part of it the input pipeline explains.
        overhead_lost_share: The rest: host overhead between steps.
    """

    verdict: str
    lost_share: float
    input_lost_share: float
    overhead_lost_share: float


def diagnose(input_step_s, compute_step_s, fit_step_s, threshold=LOST_SHARE_THRESHOLD):
    """The verdict and the shares of time lost (see the module docstring).

    Args:
        input_step_s: Seconds per batch of the input pipeline alone.
        compute_step_s: Seconds per train step on a batch already on the device.
        fit_step_s: Seconds per step of `model.fit`.
        threshold: Lost share below which the run is compute-bound.

    Returns:
        A `Diagnosis`.

    Raises:
        ValueError: If a time is not a positive number, or the threshold not
            in (0, 1).

    Example:

    >>> d = diagnose(input_step_s=0.050, compute_step_s=0.010, fit_step_s=0.051)
    >>> d.verdict, round(d.lost_share, 3)
    ('input-bound', 0.804)
    """
    t_in = _validate.number("input_step_s", input_step_s, positive=True)
    t_c = _validate.number("compute_step_s", compute_step_s, positive=True)
    t_fit = _validate.number("fit_step_s", fit_step_s, positive=True)
    threshold = _validate.number("threshold", threshold, positive=True)
    if threshold >= 1:
        raise ValueError(f"`threshold` must be a share between 0 and 1. "
                         f"Received: threshold={threshold!r}")
    lost = max(0.0, t_fit - t_c)
    input_lost = min(lost, t_in)
    overhead_lost = lost - input_lost
    share = lost / t_fit
    if share < threshold:
        verdict = COMPUTE_BOUND
    elif input_lost >= overhead_lost:
        verdict = INPUT_BOUND
    else:
        verdict = HOST_OVERHEAD
    return Diagnosis(verdict, share, input_lost / t_fit, overhead_lost / t_fit)
