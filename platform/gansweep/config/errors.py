"""A config's errors, and how their messages quote a user's value."""

from __future__ import annotations

import reprlib
from typing import Any


class ConfigError(ValueError):
    """A config key, value or combination that cannot run; the message names it."""


# How a message quotes a user's value: its repr, cut short. A value may be huge (a 10 MB string, a list of a million
# items), and its whole repr would flood the terminal or, nested, take minutes and gigabytes to build; reprlib stops
# after a few items per level and a few levels (a long string: its start and end), whatever the value.
MAX_QUOTED_CHARS = 200
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel = 3
_QUOTE.maxdict = _QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxset = 10
_QUOTE.maxstring = _QUOTE.maxother = MAX_QUOTED_CHARS


def quoted(value: Any) -> str:
    """VALUE's repr as an error message shows it: at most MAX_QUOTED_CHARS characters, then "…"."""
    text = _QUOTE.repr(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "…"

