"""The one error type for bad user input: the CLI prints its message as one line (exit 2), and reports anything
else as the bug it is, with its traceback. It is a ValueError, so library callers that catch ValueError still do."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input (an argument, a file, a field): the message names it, the value seen, and the fix."""


class UnknownName(UserError, KeyError):
    """A name (camera, variant, task) that is not there; a KeyError too, for code that looks names up."""

    def __str__(self) -> str:  # a KeyError's str() quotes its message
        return str(self.args[0]) if self.args else ""


class Unreachable(UserError, ConnectionError):
    """A server the user named does not answer; a ConnectionError too."""
