"""Learning-rate schedules of the trained solvers, one definition for every
benchmark: a ``torch.optim.lr_scheduler`` stepped after every optimizer step
over a known number of steps, so that a run of ``epochs`` epochs ends its
schedule exactly at its last step.

- ``"constant"``: the base rate throughout (no scheduler);
- ``"cosine"``: the rate times ``(1 + cos(pi t / T)) / 2`` after step ``t`` of
  ``T`` (Loshchilov & Hutter, ICLR 2017, "SGDR", eq. 5 without restarts and
  with eta_min = 0);
- ``"step"``: the rate divided by 10 at half and again at three quarters of the
  ``T`` steps (the step decay of He et al., CVPR 2016, section 3.4, placed at
  fixed fractions of the budget rather than at fixed epochs).
"""
import math
import numbers

import torch

STEP_SCHEDULES = ("constant", "cosine", "step")
# Fractions of the budget where "step" divides the rate by STEP_DECAY.
STEP_MILESTONES = (0.5, 0.75)
STEP_DECAY = 0.1


def cosine_factor(step, total_steps):
    """``(1 + cos(pi min(step, T) / T)) / 2``: from 1 at step 0 to 0 at step
    ``T = total_steps`` and after."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def step_decay_factor(step, total_steps):
    """``STEP_DECAY ** k``, ``k`` the number of milestones ``f T`` (``f`` in
    :data:`STEP_MILESTONES`) that ``step`` has reached."""
    return STEP_DECAY ** sum(step >= fraction * total_steps for fraction in STEP_MILESTONES)


FACTORS = {"cosine": cosine_factor, "step": step_decay_factor}


def check_lr_schedule(lr_schedule, accepted=STEP_SCHEDULES):
    if lr_schedule not in accepted:
        raise ValueError(f"lr_schedule={lr_schedule!r} is unknown; accepted values: "
                         f"{', '.join(map(repr, accepted))}.")


def step_scheduler(optimizer, lr_schedule, total_steps):
    """The scheduler of ``lr_schedule`` over ``total_steps`` optimizer steps
    (call its ``step()`` after each ``optimizer.step()``), or None for
    ``"constant"``. Raises ValueError on an unknown schedule or a bad
    ``total_steps`` (an integer >= 0; 0, a run of no step, is allowed)."""
    check_lr_schedule(lr_schedule)
    if (not isinstance(total_steps, numbers.Integral) or isinstance(total_steps, bool)
            or total_steps < 0):
        raise ValueError(f"total_steps={total_steps!r} must be an integer >= 0 for "
                         f"lr_schedule={lr_schedule!r}.")
    if lr_schedule == "constant":
        return None
    factor, total_steps = FACTORS[lr_schedule], max(1, int(total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step, total_steps))
