"""One YAML document validated by a pydantic model, reported as one readable error.

Model configs and model facts are both YAML files a user edits by hand; both are
parsed here so that every problem in a file comes back in one message naming the file,
the dotted key, what is wrong and the value found.
"""

from __future__ import annotations

from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{source} must be a YAML mapping ({what})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(format_errors(f"{source} is not a valid {what}:", exc, unknown_key)) from None


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
        value = f" (got {item['input']!r})" if shown else ""
        lines.append(f"  - {where}: {message}{value}")
    return "\n".join(lines)
