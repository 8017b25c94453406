"""The subset of Go's text/template that LocalAI model templates here use, for tests.

Supports ``{{.Field}}`` / ``{{ .Field }}`` and ``{{if eq .Field "x"}}...{{else if eq
.Field "y"}}...{{else}}...{{end}}``. Anything else raises, so a template that needs more
of Go cannot pass a test by being half understood.
"""

from __future__ import annotations

import re

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_FIELD = re.compile(r"^\.(\w+)$")
_EQ = re.compile(r'^(?:else\s+)?if\s+eq\s+\.(\w+)\s+"([^"]*)"$')


def render(template: str, data: dict[str, str]) -> str:
    if "{{-" in template or "-}}" in template:
        raise ValueError("whitespace trimming ({{- -}}) is not supported by this test renderer")
    tokens: list[tuple[str, str]] = []
    pos = 0
    for match in _ACTION.finditer(template):
        tokens.append(("text", template[pos : match.start()]))
        tokens.append(("action", match.group(1)))
        pos = match.end()
    tokens.append(("text", template[pos:]))
    out, rest = _block(tokens, 0, data, top=True)
    assert rest == len(tokens)
    return out


def _block(tokens, i, data, *, top=False):
    out = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            out.append(value)
            i += 1
            continue
        if value in ("end", "else") or value.startswith("else if"):
            if top:
                raise ValueError(f"unexpected {{{{{value}}}}}")
            return "".join(out), i
        field = _FIELD.match(value)
        if field:
            out.append(data[field.group(1)])
            i += 1
            continue
        if _EQ.match(value) and value.startswith("if"):
            text, i = _if(tokens, i, data)
            out.append(text)
            continue
        raise ValueError(f"unsupported template action {{{{{value}}}}}")
    if not top:
        raise ValueError("missing {{end}}")
    return "".join(out), i


def _if(tokens, i, data):
    chosen = None
    while True:
        _kind, action = tokens[i]
        if action == "else":
            body, i = _block(tokens, i + 1, data)
            chosen = body if chosen is None else chosen
            continue
        if action == "end":
            return chosen or "", i + 1
        cond = _EQ.match(action)
        if cond is None:
            raise ValueError(f"unsupported condition {{{{{action}}}}}")
        body, i = _block(tokens, i + 1, data)
        if chosen is None and data[cond.group(1)] == cond.group(2):
            chosen = body
