"""CloudWatch Logs' matching of a filter pattern against an unstructured log event, for the
subset our metric filters use (a stand-in for the service, as moto is for S3).

AWS's "Filter pattern syntax for metric filters, subscription filters, and filter log
events", unstructured log events: a term in double quotes matches that exact,
case-sensitive text anywhere in the event; several terms must all match; a term after
``-`` must not. Anything else (regular expressions, JSON and space-delimited patterns) is
refused here rather than guessed.
"""

from __future__ import annotations

import re

_TERM = re.compile(r'\s*(-?)"([^"]*)"\s*')


def matches(pattern: str, message: str) -> bool:
    position, found = 0, False
    while position < len(pattern):
        term = _TERM.match(pattern, position)
        if term is None:
            raise ValueError(f"unsupported filter pattern syntax at {pattern[position:]!r}")
        excluded, text = term.group(1) == "-", term.group(2)
        if (text in message) == excluded:
            return False
        position, found = term.end(), True
    if not found:
        raise ValueError("an empty pattern matches every event: not used here")
    return True
