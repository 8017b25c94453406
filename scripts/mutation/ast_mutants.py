"""The second operator set: mutants cosmic-ray does not make. scripts/mutation.sh calls this;
it is not a library.

    ast_mutants.py list MODULE                 print the mutants (for a look)
    ast_mutants.py run MODULE RESULTS WORKDIR TIMEOUT JOBS -- PYTEST...
    ast_mutants.py rescore MODULE RESULTS WORKDIR TIMEOUT JOBS -- PYTEST...

Operators (each applied to one place at a time, by replacing that node's source text, so
the rest of the module is byte for byte the same):

- ``ast/StringLiteral``: a string constant becomes ``""`` (``"XX"`` when it was empty); an
  f-string becomes ``""``. Docstrings and annotations are left alone.
- ``ast/SortedToList``: ``sorted(x, ...)`` becomes ``list(x)``.
- ``ast/DeleteRaise``: a ``raise`` statement becomes ``pass``.
- ``ast/DeleteReturn``: a ``return`` statement becomes ``pass`` (the function goes on).
- ``ast/ReturnNone``: ``return x`` becomes ``return None``.
- ``ast/KeywordValue``: a keyword argument's value becomes ``None`` (``True`` when it was
  ``None``).

``run`` copies WORKDIR/tree0 once per job, writes each mutant into a copy, runs the tests
there (a mutant that runs over TIMEOUT seconds, or that fails to import, counts as killed)
and writes RESULTS as TSV: operator, line, outcome, the mutated line before -> after.
``rescore`` runs again only the mutants RESULTS has as survived, against the tests as they
are now, and rewrites RESULTS; it refuses when the module's mutants are not the ones RESULTS
lists (the module changed: score it afresh).
"""

from __future__ import annotations

import ast
import concurrent.futures
import queue
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    operator: str
    line: int
    start: int  # offsets into the source's UTF-8 bytes (ast's col_offset counts bytes)
    end: int
    replacement: str

    def apply(self, source: str) -> str:
        data = source.encode()
        return (data[: self.start] + self.replacement.encode() + data[self.end :]).decode()


def _offsets(data: bytes) -> list[int]:
    """Byte offset of the start of each line (1-based line numbers index it)."""
    starts = [0, 0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (never evaluated under __future__ annotations)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None:
                    annotations.append(arg.annotation)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None:
                inside.update(id(n) for n in ast.walk(annotation))
    return inside


def _docstrings(tree: ast.AST) -> set[int]:
    """A string alone as a statement: a docstring (module, class, function, attribute),
    never read by the code."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    data = source.encode()
    starts = _offsets(data)
    skip = _annotation_nodes(tree) | _docstrings(tree)
    # Parts of an f-string (its constants, nested f-strings) change only with the whole.
    in_fstring = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in ast.walk(node)
        if part is not node
    }

    def span(node: ast.AST) -> tuple[int, int]:
        return (
            starts[node.lineno] + node.col_offset,
            starts[node.end_lineno] + node.end_col_offset,
        )

    found: list[Mutant] = []

    def add(operator: str, node: ast.AST, replacement: str) -> None:
        start, end = span(node)
        found.append(Mutant(operator, node.lineno, start, end, replacement))

    for node in ast.walk(tree):
        if id(node) in skip or id(node) in in_fstring:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            add("ast/StringLiteral", node, '"XX"' if node.value == "" else '""')
        elif isinstance(node, ast.JoinedStr):
            add("ast/StringLiteral", node, '""')
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "sorted"
            and node.args
        ):
            start, end = span(node.args[0])
            add("ast/SortedToList", node, f"list({data[start:end].decode()})")
        elif isinstance(node, ast.Raise):
            add("ast/DeleteRaise", node, "pass")
        elif isinstance(node, ast.Return):
            add("ast/DeleteReturn", node, "pass")
            if node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None
            ):
                add("ast/ReturnNone", node, "return None")
        elif isinstance(node, ast.keyword) and node.arg is not None:
            none = isinstance(node.value, ast.Constant) and node.value.value is None
            add("ast/KeywordValue", node.value, "True" if none else "None")
    return sorted(set(found), key=lambda m: (m.line, m.start, m.operator))


def describe(source: str, mutant: Mutant) -> str:
    """The mutated line before -> after (the first line of the change)."""
    before = source.splitlines()[mutant.line - 1]
    after = mutant.apply(source).splitlines()[mutant.line - 1]
    return f"{before.strip()} -> {after.strip()}"


def run(
    module: str,
    results: Path,
    work: Path,
    timeout: int,
    jobs: int,
    pytest: list[str],
    *,
    rescore: bool = False,
) -> None:
    source = (work / "tree0" / module).read_text()
    todo = mutants(source)
    kept: dict[Mutant, str] = {}  # rescore: the previous outcome of each mutant not rerun
    if rescore:
        previous = [raw.split("\t", 3) for raw in results.read_text().splitlines()]
        listed = [(m.operator, str(m.line), describe(source, m).replace("\t", " ")) for m in todo]
        if [(op, line, detail) for op, line, _, detail in previous] != listed:
            sys.exit(f"ast: {module} is not the module {results} scored: run it afresh")
        kept = {m: p[2] for m, p in zip(todo, previous, strict=True) if p[2] != "survived"}
    trees: queue.Queue[Path] = queue.Queue()
    for number in range(1, jobs + 1):
        tree = work / f"ast-tree{number}"
        if not tree.exists():
            shutil.copytree(work / "tree0", tree, symlinks=True)
        trees.put(tree)

    def one(mutant: Mutant) -> tuple[Mutant, str]:
        tree = trees.get()
        try:
            (tree / module).write_text(mutant.apply(source))
            try:
                done = subprocess.run(
                    pytest, cwd=tree, capture_output=True, timeout=timeout, check=False
                )
                outcome = "survived" if done.returncode == 0 else "killed"
            except subprocess.TimeoutExpired:
                outcome = "killed"
            return mutant, outcome
        finally:
            (tree / module).write_text(source)
            trees.put(tree)

    def outcome_of(mutant: Mutant) -> tuple[Mutant, str]:
        return (mutant, kept[mutant]) if mutant in kept else one(mutant)

    # Written beside RESULTS and moved over it at the end: an interrupted run (or rescore)
    # leaves the previous results whole.
    partial = results.with_name(results.name + ".partial")
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool, partial.open("w") as out:
        for number, (mutant, outcome) in enumerate(pool.map(outcome_of, todo), start=1):
            detail = describe(source, mutant).replace("\t", " ")
            out.write(f"{mutant.operator}\t{mutant.line}\t{outcome}\t{detail}\n")
            out.flush()
            where = f"{mutant.operator} line {mutant.line}"
            print(f"ast: {number}/{len(todo)} {where}: {outcome}", flush=True)
    partial.replace(results)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "list":
        source = Path(sys.argv[2]).read_text()
        for mutant in mutants(source):
            print(f"{mutant.operator}\tline {mutant.line}\t{describe(source, mutant)}")
        return 0
    if len(sys.argv) > 8 and sys.argv[1] in ("run", "rescore") and sys.argv[7] == "--":
        module, results, work, timeout, jobs = sys.argv[2:7]
        run(module, Path(results), Path(work), int(timeout), int(jobs), sys.argv[8:],
            rescore=sys.argv[1] == "rescore")  # fmt: skip
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
