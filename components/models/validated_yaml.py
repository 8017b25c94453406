"""One YAML document validated by a pydantic model, reported as one readable error.

Model configs and model facts are both YAML files a user edits by hand; both are
parsed here so that every problem in a file comes back in one message naming the file,
the dotted key, what is wrong and the value found.
"""

from __future__ import annotations

import re
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_USERINFO = re.compile(r"(://)[^/@\s'\"]*@")
MAX_YAML_BYTES = 256 * 1024
"""Model configs and facts are a few KiB; anything larger is not one."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases: a few nested aliases in a small file expand
    to gigabytes ("billion laughs"); hand-written model files never need them."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed here", event.start_mark
            )
        return super().compose_node(parent, index)


def load_bounded_yaml(text: str) -> object:
    """``yaml.safe_load`` for hand-edited files: at most MAX_YAML_BYTES, no aliases."""
    if len(text.encode("utf-8")) > MAX_YAML_BYTES:
        raise yaml.YAMLError(f"the file is over {MAX_YAML_BYTES // 1024} KiB")
    return yaml.load(text, Loader=_NoAliasLoader)


def parse_yaml_model(
    text: str,
    model: type[ModelT],
    *,
    source: str,
    what: str,
    error: type[Exception],
    unknown_key: str,
) -> ModelT:
    """Parse ``text`` as a mapping and validate it as ``model``; raise ``error`` if not.

    ``what`` names the kind of file in messages; ``unknown_key`` explains a key the
    model does not have.
    """
    try:
        data = load_bounded_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{source} is not valid YAML: {exc}") from None
    except RecursionError:
        raise error(f"{source} is not a {what}: it nests too deeply") from None
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
        raise error(f"{source} is not a {what}: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{source} must be a YAML mapping ({what})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(format_errors(f"{source} is not a valid {what}:", exc, unknown_key)) from None
    except RecursionError:
        raise error(f"{source} is not a {what}: it nests too deeply") from None


def format_errors(header: str, error: ValidationError, unknown_key: str) -> str:
    lines = [header]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key: {unknown_key}"
        elif item["type"] == "missing":
            message = "required key is missing"
        shown = item["loc"] and item["type"] not in ("missing", "extra_forbidden")
        value = f" (got {_short(item['input'])})" if shown else ""
        lines.append(f"  - {where}: {message}{value}")
    return "\n".join(lines)


def _short(value: object) -> str:
    """A value as a message shows it: its repr, cut at 80 characters (a 100,000-digit
    integer or a huge nested list is not printed whole)."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long for repr
        return "a number too long to show"
    text = _USERINFO.sub(r"\1[credentials]@", text)  # never echo user:password@
    return text if len(text) <= 80 else text[:77] + "..."
