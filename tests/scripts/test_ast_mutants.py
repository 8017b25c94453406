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


TINY = 'def greet(name):\n    return "hello " + name\n'
WEAK_TEST = "from tiny import greet\n\ndef test_it():\n    assert greet('x')\n"
STRONG_TEST = "from tiny import greet\n\ndef test_it():\n    assert greet('x') == 'hello x'\n"


def test_rescore_runs_only_the_survivors_again_and_refuses_a_changed_module(tmp_path) -> None:
    import subprocess

    tree = tmp_path / "tree0"
    tree.mkdir()
    (tree / "tiny.py").write_text(TINY)
    (tree / "test_tiny.py").write_text(WEAK_TEST)
    results = tmp_path / "ast.tsv"
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_tiny.py"]

    def score(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts/mutation/ast_mutants.py"), command, "tiny.py",
             str(results), str(tmp_path), "60", "1", "--", *pytest],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    assert score("run").returncode == 0
    first = [line.split("\t")[:3] for line in results.read_text().splitlines()]
    # "" + name is still truthy; `pass` and `return None` give None: killed.
    assert first == [["ast/DeleteReturn", "2", "killed"], ["ast/ReturnNone", "2", "killed"],
                     ["ast/StringLiteral", "2", "survived"]]  # fmt: skip
    for copy in tmp_path.glob("ast-tree*"):
        (copy / "test_tiny.py").write_text(STRONG_TEST)
    (tree / "test_tiny.py").write_text(STRONG_TEST)
    rescored = score("rescore")
    assert rescored.returncode == 0, rescored.stderr
    assert [line.split("\t")[2] for line in results.read_text().splitlines()] == ["killed"] * 3
    assert "ast: 3/3 ast/StringLiteral line 2: killed" in rescored.stdout
    (tree / "tiny.py").write_text(TINY.replace("hello ", "hi "))
    refused = score("rescore")
    assert refused.returncode != 0
    assert "is not the module" in refused.stderr
