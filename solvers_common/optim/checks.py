"""Validation of optimizer and solver settings, shared by the optimizers of
this package and the benchmarks' solvers: every bad value raises a
ValueError that names the setting and what it accepts, before any work."""
import math
import numbers


def _is_number(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def check_nonnegative(name, value):
    if not _is_number(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0.")


def check_positive(name, value):
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0.")


def check_integer(name, value, minimum=1):
    """ValueError naming ``name`` unless ``value`` is an integer (not a
    bool) of at least ``minimum``."""
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
            or value < minimum):
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}.")


def check_positive_or_none(name, value):
    """ValueError naming ``name`` unless ``value`` is None or a finite
    number > 0."""
    if value is not None:
        try:
            check_positive(name, value)
        except ValueError:
            raise ValueError(f"{name}={value!r} must be None or a finite number > 0.") from None


def check_unit_interval(name, value):
    """``value`` in [0, 1)."""
    if not _is_number(value) or not 0 <= value < 1:
        raise ValueError(f"{name}={value!r} must be a number in [0, 1).")


def check_regularizer(regularizer, params):
    """``regularizer`` is None or has the methods the optimizers call, and
    accepts the shape of every parameter of its group."""
    if regularizer is None:
        return
    missing = [name for name in ("prox_", "subgradient", "value", "check_parameter")
               if not callable(getattr(regularizer, name, None))]
    if missing:
        raise ValueError(
            f"regularizer={regularizer!r} lacks {', '.join(missing)}; accepted values: "
            "None or a regularizer of solvers_common.optim (L1, L1Rows, L1Kernels, "
            "or make_regularizer(name, lmbd))."
        )
    for parameter in params:
        regularizer.check_parameter(parameter)
