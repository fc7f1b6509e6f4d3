"""The exceptions of the capture layer (typed, so callers branch on the type, never on message text)."""

from __future__ import annotations

from typing import Any

__all__ = ["CaptureError", "ForwardError", "SampleError", "UnknownLayerError", "user_function_raised"]


class CaptureError(ValueError):
    """Base of the capture layer's errors: a bad layer name, data that cannot be sampled."""


class UnknownLayerError(CaptureError):
    """A layer name or pattern matches no module of the model (the message lists close matches)."""


class SampleError(CaptureError):
    """The data cannot give a sample: empty, no tensor input, labels that are not integers, ..."""


class ForwardError(CaptureError):
    """The forward pass on the sample raised: the model does not take the sampled inputs as given (pass
    ``forward_fn=`` or ``input_fn=``), or ``forward_fn`` / ``output_fn`` failed. The original exception is chained
    (``__cause__``)."""


def user_function_raised(argument: str, fn: Any, err: BaseException) -> str:
    """The start of a message about a user's function that raised: ``"`input_fn` (pick) raised KeyError: 'x'"``.

    Example:
        >>> user_function_raised("input_fn", lambda b: b, KeyError("x"))
        "`input_fn` (<lambda>) raised KeyError: 'x'"
    """
    what = getattr(fn, "__qualname__", type(fn).__name__)
    return f"`{argument}` ({what}) raised {type(err).__name__}: {error_text(err)}"


ERROR_TEXT_LIMIT = 400
"""The most characters of a chained error's text quoted in a message (Python's ``TypeError`` for ``m(**x)`` quotes
the whole model's repr): the rest is in the chained error's traceback."""


def error_text(err: BaseException) -> str:
    """``str(err)``, its middle cut where it is longer than :data:`ERROR_TEXT_LIMIT` characters (saying so: the
    start and the end, where Python puts what went wrong, are kept).

    Example:
        >>> text = error_text(ValueError("a" * 1000 + " must be a mapping"))
        >>> "[... 618 of 1018 characters cut: the whole error is chained below]" in text, text[-17:]
        (True, 'must be a mapping')
    """
    text = str(err)
    if len(text) <= ERROR_TEXT_LIMIT:
        return text
    half = ERROR_TEXT_LIMIT // 2
    cut = len(text) - 2 * half
    return f"{text[:half]} [... {cut} of {len(text)} characters cut: the whole error is chained below] {text[-half:]}"


def plural(count: int, one: str, many: str | None = None) -> str:
    """``"1 input"``, ``"3 inputs"``: ``count`` and the word for it (``many`` defaults to ``one + "s"``)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
