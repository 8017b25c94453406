"""Whether Go's regexp (RE2 syntax) compiles a pattern, asked of the RE2 library itself.

LocalAI v2.24.0 compiles the regular expressions of a model config with Go's regexp at the
first request that needs them, and exits (log.Fatal, regexp.MustCompile) on one it cannot
compile: a pattern is checked here, at preview, instead.
"""

from __future__ import annotations


def re2_problem(pattern: str) -> str | None:
    """Why RE2 (Go's regexp syntax) refuses ``pattern``, or None."""
    import re2  # google-re2: the RE2 library itself

    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return None
