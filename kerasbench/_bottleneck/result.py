"""Bottleneck: the outcome of `bottleneck()`, frozen, with its figures and verdict."""

from __future__ import annotations

import dataclasses
import json

from kerasbench._bottleneck import text
from kerasbench._bottleneck.verdict import LOST_SHARE_THRESHOLD, REMEDIES, diagnose


@dataclasses.dataclass(frozen=True)
class Bottleneck:
    """What limits training: the three measurements and the verdict.

    Attributes:
        verdict: ``"input-bound"``, ``"compute-bound"`` or ``"host-overhead"``.
        input_images_per_sec: The input pipeline alone.
        compute_images_per_sec: The model's train step on one batch already
            on the device: what the compute can do.
        fit_images_per_sec: ``model.fit`` with both, as `ThroughputCallback`
            measured it.
        input_step_time_s, compute_step_time_s, fit_step_time_s: Mean seconds
            per step (batch) of each, ``time_s / steps``.
        lost_share: Share of fit's time not spent computing:
            ``(fit_step_time_s - compute_step_time_s) / fit_step_time_s``,
            at least 0 (`verdict.diagnose`).
        input_lost_share: The part of ``lost_share`` the input explains.
        overhead_lost_share: The rest: host overhead between steps.
        samples_per_batch: Samples in a batch (the first batch's).
        steps: Measured steps of each measurement.
        warmup_steps: Steps left out at the start of each.
        backend: The Keras backend.
        wall_time_s: Seconds the whole call took (three measurements,
            warmups and setup).
        remedies: The usual remedies of the verdict, in the order worth trying.
        notes: Plain-words remarks on the measurements.
        phases: Every figure of each measurement, ``{"input": {...},
            "compute": {...}, "train": {...}}`` (`ThroughputResult.to_dict`).
    """

    verdict: str
    input_images_per_sec: float | None
    compute_images_per_sec: float | None
    fit_images_per_sec: float | None
    input_step_time_s: float
    compute_step_time_s: float
    fit_step_time_s: float
    lost_share: float
    input_lost_share: float
    overhead_lost_share: float
    samples_per_batch: int
    steps: int
    warmup_steps: int
    backend: str
    wall_time_s: float
    remedies: tuple = ()
    notes: tuple = ()
    phases: dict = dataclasses.field(default_factory=dict, repr=False)

    def summary(self):
        """The verdict in plain words, the figures, the remedies and notes."""
        return text.summary(self)

    def __str__(self):
        return self.summary()

    def to_dict(self):
        """Every field as JSON-serialisable values (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["remedies"], d["notes"] = list(self.remedies), list(self.notes)
        return d

    def to_json(self, **kwargs):
        """`to_dict` as JSON text (``kwargs`` go to `json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


def _step_time(stats):
    return stats.time_s / stats.steps


def from_measurements(input_stats, compute_stats, fit_stats, *, samples_per_batch, backend,
                      wall_time_s, threshold=LOST_SHARE_THRESHOLD):
    """A `Bottleneck` from the three `ThroughputResult`s (pure).

    Args:
        input_stats, compute_stats, fit_stats: The three measurements.
        samples_per_batch: Samples in a batch.
        backend: The Keras backend's name.
        wall_time_s: Seconds the whole call took.
        threshold: Lost share below which the run is compute-bound.
    """
    times = [_step_time(s) for s in (input_stats, compute_stats, fit_stats)]
    found = diagnose(*times, threshold=threshold)
    fit_rate = fit_stats.images_per_sec
    notes = []
    if fit_rate is None:
        fit_rate = samples_per_batch / times[2]
        notes.append(f"fit's sample count was unknown: its images/sec assumes full batches "
                     f"of {samples_per_batch}")
    if times[2] < times[1] * (1 - threshold):
        notes.append(f"fit ran {1 - times[2] / times[1]:.0%} faster per step than the model "
                     "alone: train_on_batch waits for each step's loss, fit does not, so "
                     "the compute figure is a lower bound here")
    for stats in (input_stats, compute_stats, fit_stats):
        notes.extend(f"{stats.phase}: {note}" for note in stats.notes)
    return Bottleneck(
        verdict=found.verdict, input_images_per_sec=input_stats.images_per_sec,
        compute_images_per_sec=compute_stats.images_per_sec, fit_images_per_sec=fit_rate,
        input_step_time_s=times[0], compute_step_time_s=times[1], fit_step_time_s=times[2],
        lost_share=found.lost_share, input_lost_share=found.input_lost_share,
        overhead_lost_share=found.overhead_lost_share, samples_per_batch=samples_per_batch,
        steps=fit_stats.steps, warmup_steps=fit_stats.warmup_steps, backend=backend,
        wall_time_s=wall_time_s, remedies=REMEDIES[found.verdict], notes=tuple(notes),
        phases={s.phase: s.to_dict() for s in (input_stats, compute_stats, fit_stats)},
    )
