"""The learning-rate schedule: decay on dev-BLEU plateaus (`plateau`, the default), or linear
decay over the run's budget (`linear`).

`plateau` multiplies the LR by `lr_decay` after `lr_patience` validations without a dev-BLEU
gain (torch's ReduceLROnPlateau, built by the trainer). It suits runs that end by early
stopping; a run cut by a time budget may end before its first decay.

`linear` decays from `lr` at the first update to 0 at the run's horizon H (floored at
`min_lr`), the schedule that budgeted training favours (Li et al., 2020, "Budgeted training:
rethinking deep neural network training under resource constraints"):

    lr_u = max(lr * (1 - (u - 1) / H), min_lr)        u = 1, 2, ... the update

H is the smallest budget the run has: `max_steps`; `max_epochs` times the updates in the
first epoch; and with `max_time`, the updates the time allows at the rate measured so far
(validations included, data preparation not), estimated again at the end of every
validation:

    H_time = u_v * (max_time - t_0) / (t_v - t_0)

with u_v, t_v the updates and run seconds after that validation and t_0 the run seconds
when the first update began. Until the first validation (with `max_time`) the LR stays at
`lr`. The estimate is renewed because a run starts slower than it goes on: on Multi30k the
first epoch's logging windows ran at 1,500-3,200 tokens/s against 3,000-4,400 in the tenth
epoch (four members), so a horizon fixed at the first validation came out 15-25% short
(BENCHMARKS.md, "Recipe levers").

H is saved in `last.pt`. Without `max_time` the schedule is a function of the update count
alone, so resume is exact; with `max_time` it follows the measured speed, so, like the
point where a time budget stops a run, it is not reproducible to the bit.
"""

from __future__ import annotations

from nmt.config import TrainConfig


def linear_lr(tc: TrainConfig, update: int, horizon: int) -> float:
    """The LR of update `update` (1-based) under linear decay to `horizon`."""
    return max(tc.lr * (1.0 - (update - 1) / horizon), tc.min_lr)


def budget_horizon(tc: TrainConfig, updates_per_epoch: int) -> int | None:
    """The updates that `max_steps` and `max_epochs` allow (None: neither is known, as for
    a streamed corpus without `max_steps`)."""
    limits = [tc.max_steps] if tc.max_steps is not None else []
    if updates_per_epoch:
        limits.append(tc.max_epochs * updates_per_epoch)
    return min(limits) if limits else None


def time_horizon(tc: TrainConfig, updates: int, seconds: float, loop_start: float) -> int:
    """The updates `max_time` allows at the rate of the `updates` so far, which took the run
    from `loop_start` to `seconds` (run seconds)."""
    assert tc.max_time is not None
    spent = max(seconds - loop_start, 1e-9)
    return max(updates, int(updates * (tc.max_time - loop_start) / spent))
