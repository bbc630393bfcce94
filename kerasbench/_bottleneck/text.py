"""The plain-words summary of a `Bottleneck` (what `bottleneck()` prints)."""

from __future__ import annotations

from kerasbench._bottleneck.verdict import COMPUTE_BOUND, INPUT_BOUND


def rate_text(value):
    """``410``, ``1,900``, ``12.5``: images/sec as people read them."""
    if value is None:
        return "?"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def headline(found):
    """The verdict in one line, with the figures that decide it.

    Example: ``input-bound: the pipeline delivers 410 images/sec, the model
    could take 1,900``.
    """
    inp, comp, fit = (rate_text(v) for v in (found.input_images_per_sec,
                                             found.compute_images_per_sec,
                                             found.fit_images_per_sec))
    lost = f"{found.lost_share:.0%}"
    if found.verdict == INPUT_BOUND:
        if found.input_step_time_s >= found.compute_step_time_s:
            return (f"input-bound: the pipeline delivers {inp} images/sec, the model could "
                    f"take {comp}; fit runs at {fit} ({lost} of its time lost waiting for data)")
        return (f"input-bound: the pipeline delivers {inp} images/sec and the model could take "
                f"{comp}, but making batches is not overlapped with the compute: fit runs at "
                f"{fit} ({lost} of its time lost)")
    if found.verdict == COMPUTE_BOUND:
        return (f"compute-bound: fit runs at {fit} images/sec, the model alone at {comp} "
                f"({lost} of fit's time lost); the pipeline could deliver {inp}")
    return (f"host-overhead: fit runs at {fit} images/sec, the model could take {comp} and the "
            f"pipeline deliver {inp}; {lost} of fit's time is lost between steps")


def figures(found):
    """The three measurements, one line each, and how fit's time was lost."""
    rows = [("input pipeline alone", found.input_images_per_sec, found.input_step_time_s),
            ("model on one batch", found.compute_images_per_sec, found.compute_step_time_s),
            ("fit (both together)", found.fit_images_per_sec, found.fit_step_time_s)]
    width = max(len(rate_text(r)) for _, r, _ in rows)
    lines = [f"  {name:<22}{rate_text(r):>{width}} images/sec  {t * 1000:8.2f} ms/step"
             for name, r, t in rows]
    lines.append(f"  time lost: {found.lost_share:.0%} of fit's time (waiting for data "
                 f"{found.input_lost_share:.0%}, host overhead {found.overhead_lost_share:.0%})"
                 f"; {found.steps} steps each, after {found.warmup_steps} warmup, batch "
                 f"{found.samples_per_batch}, {found.backend}")
    return lines


def summary(found):
    """Headline, figures, remedies and notes, as printed."""
    lines = [headline(found), *figures(found), "remedies:"]
    lines += [f"  - {remedy}" for remedy in found.remedies]
    if found.notes:
        lines.append("notes:")
        lines += [f"  - {note}" for note in found.notes]
    return "\n".join(lines)
