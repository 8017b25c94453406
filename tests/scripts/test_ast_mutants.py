"""scripts/mutation/ast_mutants.py: the second mutation operator set makes each mutant it
names, in the right place, and nothing in docstrings or annotations."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "ast_mutants", REPO / "scripts/mutation/ast_mutants.py"
)
assert SPEC is not None and SPEC.loader is not None
ast_mutants = importlib.util.module_from_spec(SPEC)
sys.modules["ast_mutants"] = ast_mutants  # dataclasses look their module up there
SPEC.loader.exec_module(ast_mutants)

SOURCE = '''"""Docstring: never mutated."""
from __future__ import annotations


def pick(names: list[str] | None, label: str = "é") -> str | None:
    """Its docstring."""
    if not names:
        raise ValueError(f"no names for {label}")
    chosen = sorted(names, key=len)
    return format(chosen[0], "") + "—" + str(len(chosen))


def show(values: dict) -> None:
    print(", ".join(values), end="—", sep="")
    return None
'''


def mutated() -> list[tuple[str, str]]:
    return [(m.operator, ast_mutants.describe(SOURCE, m)) for m in ast_mutants.mutants(SOURCE)]


def test_each_operator_makes_its_mutants_and_only_those() -> None:
    """In line order, then by position (a keyword's value before the literal it is); the
    non-ASCII characters ahead on a line do not shift a mutant (ast counts bytes)."""
    assert mutated() == [
        ("ast/StringLiteral",
         'def pick(names: list[str] | None, label: str = "é") -> str | None: -> '
         'def pick(names: list[str] | None, label: str = "") -> str | None:'),
        ("ast/DeleteRaise",
         'raise ValueError(f"no names for {label}") -> pass'),
        ("ast/StringLiteral",
         'raise ValueError(f"no names for {label}") -> raise ValueError("")'),
        ("ast/SortedToList",
         "chosen = sorted(names, key=len) -> chosen = list(names)"),
        ("ast/KeywordValue",
         "chosen = sorted(names, key=len) -> chosen = sorted(names, key=None)"),
        ("ast/DeleteReturn",
         'return format(chosen[0], "") + "—" + str(len(chosen)) -> pass'),
        ("ast/ReturnNone",
         'return format(chosen[0], "") + "—" + str(len(chosen)) -> return None'),
        ("ast/StringLiteral",
         'return format(chosen[0], "") + "—" + str(len(chosen)) -> '
         'return format(chosen[0], "XX") + "—" + str(len(chosen))'),
        ("ast/StringLiteral",
         'return format(chosen[0], "") + "—" + str(len(chosen)) -> '
         'return format(chosen[0], "") + "" + str(len(chosen))'),
        ("ast/StringLiteral",
         'print(", ".join(values), end="—", sep="") -> print("".join(values), end="—", sep="")'),
        ("ast/KeywordValue",
         'print(", ".join(values), end="—", sep="") -> print(", ".join(values), end=None, sep="")'),
        ("ast/StringLiteral",
         'print(", ".join(values), end="—", sep="") -> print(", ".join(values), end="", sep="")'),
        ("ast/KeywordValue",
         'print(", ".join(values), end="—", sep="") -> print(", ".join(values), end="—", sep=None)'),
        ("ast/StringLiteral",
         'print(", ".join(values), end="—", sep="") -> print(", ".join(values), end="—", sep="XX")'),
        ("ast/DeleteReturn", "return None -> pass"),
    ]  # fmt: skip


def test_every_mutant_is_valid_python_that_differs_from_the_source() -> None:
    for mutant in ast_mutants.mutants(SOURCE):
        text = mutant.apply(SOURCE)
        assert text != SOURCE
        ast.parse(text)
