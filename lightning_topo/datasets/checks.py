"""Checks of the data modules' arguments: a bad value is a ``ValueError`` naming it and the valid range when the
module is built (the command line prints it as a one-line usage error), not an error deep inside a ``DataLoader``."""

from __future__ import annotations

__all__ = ["check_int"]


def check_int(name: str, value: object, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) ``>= minimum``.

    Example:
        >>> check_int("batch_size", 0, 1)
        Traceback (most recent call last):
        ValueError: `batch_size` must be an integer >= 1, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
