"""Errors raised when input cannot be accepted."""

from __future__ import annotations


class InvalidEventError(ValueError):
    """An input record that cannot be used: it goes to the dead-letter topic.

    Attributes:
        code: a short stable reason code (``not_json``, ``schema``, ``too_large``, ...)
            that dashboards and alerts can group by.
        message: what was wrong, naming the field, for a person to act on.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
