"""Step-size schedules: step_t = step_size / (t + 1) ** exponent.

exponent 0 is a constant step (SABA, SRBA, AmIGO, stocBiO); SOBA (Dagréou et
al. 2022, Theorem 1) and TTSA (Hong et al. 2020) use decreasing steps.
"""
from .sampling import check_positive


class StepSizeSchedule:
    """``schedule(t)`` = step_size / (t + 1) ** exponent, t = 0, 1, ..."""

    def __init__(self, step_size, exponent=0.0, name="step_size"):
        check_positive(name, step_size)
        if not exponent >= 0:
            raise ValueError(f"the exponent of {name}'s schedule must be >= 0, "
                             f"got {exponent!r}.")
        self.step_size, self.exponent = float(step_size), float(exponent)

    def __call__(self, t):
        if self.exponent == 0:
            return self.step_size
        return self.step_size / (t + 1) ** self.exponent
