"""Objective parameters whose one value is a set of numbers (noise levels,
extra depths).

benchopt reads a tuple or list in brackets, ``noise_levels=(0.1,1)``, as a
grid of objectives with one value each; such a parameter is therefore given
as one string of comma-separated numbers, ``noise_levels='0.1,1,10'``, in a
config and on the command line, and parsed by the objective with the
functions below.
"""
import math
import numbers


def parse_number_list(name, value, convert, example):
    """The numbers of a parameter whose one value is a set of numbers, as a
    tuple: a number, a string of comma-separated numbers (what configs and the
    command line give; empty for none), or a sequence of numbers.
    ``convert(item)`` returns the number or raises ValueError with the reason.
    ValueError naming the parameter on anything else and on a repetition."""
    def bad(reason):
        return ValueError(f"{name}={value!r}: {reason}. {example}")

    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        if items == [""]:
            items = []
        if any(item == "" for item in items):
            raise bad("empty value between commas")
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        raise bad("not a number, a string or a sequence of numbers")
    parsed = []
    for item in items:
        if isinstance(item, bool):
            raise bad(f"{item!r} is not a number")
        try:
            parsed.append(convert(item))
        except (TypeError, ValueError) as error:
            raise bad(f"{item!r} {error}") from None
    if len(set(parsed)) != len(parsed):
        raise bad("a value is repeated")
    return tuple(parsed)


def _positive_finite(item):
    try:
        sigma = float(item)
    except (TypeError, ValueError):
        raise ValueError("is not a number") from None
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError("is not a positive finite number")
    return sigma


def _non_negative_integer(item):
    try:
        number = float(item)
    except (TypeError, ValueError):
        raise ValueError("is not a number") from None
    if not (number >= 0 and math.isfinite(number) and number == int(number)):
        raise ValueError("is not an integer >= 0")
    return int(number)


def parse_noise_levels(noise_levels):
    """The noise levels of the ``noise_levels`` parameter as a tuple of
    floats: a number (one level), a string of comma-separated numbers (what
    configs and the command line give, ``'0.1,1,10'``; empty for none), or a
    sequence of numbers. ValueError on anything else, on a level that is not
    positive and finite, and on a repeated level."""
    return parse_number_list(
        "noise_levels", noise_levels, _positive_finite,
        "Give positive numbers as a string of comma-separated values, for example "
        "noise_levels='0.1,1,10', or a single number.")


def parse_extra_layers(extra_layers):
    """The numbers of layers past the trained depth of the ``extra_layers``
    parameter, a tuple of integers >= 0, given as ``noise_levels`` is."""
    return parse_number_list(
        "extra_layers", extra_layers, _non_negative_integer,
        "Give integers >= 0 as a string of comma-separated values, for example "
        "extra_layers='0,10,40', or a single number.")
