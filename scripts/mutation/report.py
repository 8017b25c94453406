"""Score a mutation run: scripts/mutation.sh calls this; it is not a library.

A cosmic-ray session (--session), the second operator set's results (--ast-results, TSV:
operator, line, outcome, the line before -> after; scripts/mutation/ast_mutants.py) or the
bash runner's results (--results, TSV: name, outcome, sed expression). A surviving mutant
is *equivalent* when equivalent.txt has a line for it, and then it is left out of the score:

    MODULE || OPERATOR-GLOB || SOURCE-LINE || REASON   (Python: the mutated line, stripped)
    MODULE || MUTANT-NAME   || -           || REASON   (bash: the mutant's name)

(`||` separates the fields: Python code has no `||`, and `|` is an operator.)

Lines are matched by their text, not their number, so entries survive edits elsewhere
in the module. One kind is equivalent by rule rather than by entry: a mutant that lies
wholly inside a function's parameter or return annotation, in a module that has
`from __future__ import annotations` (PEP 563: the annotation is kept as a string and never
evaluated) and never reads annotations back (no get_type_hints, validate_call, signature
or __annotations__ in the module). `X | None` turned into `X & None` there changes no
behaviour; the report counts these separately and says so. Annotations of class bodies
(pydantic fields, dataclasses) are never covered by the rule: pydantic evaluates them.
An entry that matches no surviving mutant is reported as stale, so the file cannot
quietly grow excuses for mutants that are killed today.

Score = killed / (all - equivalent); timeouts and mutants that fail to import count as
killed (the tests did notice). Exit 0 when the score reaches MUTATION_MIN_SCORE (95).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    module: str
    operator: str
    line: str
    reason: str


@dataclass(frozen=True)
class Mutant:
    name: str  # operator (Python) or mutant name (bash)
    line_no: int | None
    line: str
    outcome: str  # killed | survived
    detail: str  # the diff or the sed expression


def read_equivalents(path: Path, module: str) -> list[Entry]:
    entries = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [part.strip() for part in raw.split(" || ")]
        if len(parts) != 4 or not all(parts):
            sys.exit(f"mutation: {path}:{number}: want 'MODULE || OPERATOR || LINE || REASON'")
        if parts[0] == module:
            entries.append(Entry(*parts))
    return entries


Span = tuple[tuple[int, int], tuple[int, int]]  # (row, col) start and end; rows from 1

# A module that reads annotations back at run time evaluates the strings PEP 563 left.
READS_ANNOTATIONS = ("get_type_hints", "validate_call", "signature(", "__annotations__")


def unevaluated_annotations(text: str) -> list[Span]:
    """The spans of function parameter and return annotations that are never evaluated."""
    tree = ast.parse(text)
    postponed = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )
    if not postponed or any(marker in text for marker in READS_ANNOTATIONS):
        return []
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        annotations = [a.annotation for a in every if a.annotation is not None]
        if node.returns is not None:
            annotations.append(node.returns)
        for annotation in annotations:
            assert annotation.end_lineno is not None and annotation.end_col_offset is not None
            spans.append(
                (
                    (annotation.lineno, annotation.col_offset),
                    (annotation.end_lineno, annotation.end_col_offset),
                )
            )
    return spans


def inside(span: Span, spans: list[Span]) -> bool:
    # Columns of both ast and cosmic-ray (parso) count from 0 on the line; ast counts UTF-8
    # bytes and parso characters, which agree on the ASCII lines annotations are written on.
    return any(start <= span[0] and span[1] <= end for start, end in spans)


def python_mutants(session: Path, source: Path) -> tuple[list[Mutant], int]:
    """The session's mutants, less the survivors inside unevaluated annotations (counted)."""
    text = source.read_text()
    lines = text.splitlines()
    annotations = unevaluated_annotations(text)
    rows = sqlite3.connect(session).execute(
        "SELECT s.operator_name, s.start_pos_row, s.start_pos_col, s.end_pos_row,"
        " s.end_pos_col, r.worker_outcome, r.test_outcome, r.diff"
        " FROM mutation_specs s LEFT JOIN work_results r ON r.job_id = s.job_id"
        " ORDER BY s.start_pos_row, s.operator_name, s.occurrence"
    )
    mutants = []
    in_annotations = 0
    for operator, row, col, end_row, end_col, worker, test, diff in rows:
        if worker is None:
            sys.exit("mutation: the session has mutants without a result (interrupted run?)")
        # skip_annotations.py marks the ones inside unevaluated annotations "skipped"
        # before exec; a run without it leaves them to survive. Either way: by rule.
        skipped = worker.lower() == "skipped"
        survived = worker.lower() == "normal" and (test or "").lower() == "survived"
        if (survived or skipped) and inside(((row, col), (end_row, end_col)), annotations):
            in_annotations += 1
            continue
        if skipped:
            sys.exit(f"mutation: a skipped mutant outside any annotation, line {row}")
        mutants.append(
            Mutant(
                name=operator,
                line_no=row,
                line=lines[row - 1].strip(),
                outcome="survived" if survived else "killed",
                detail=diff or "",
            )
        )
    return mutants, in_annotations


def ast_mutants(results: Path, source: Path) -> list[Mutant]:
    lines = source.read_text().splitlines()
    mutants = []
    for raw in results.read_text().splitlines():
        operator, line_no, outcome, detail = raw.split("\t", 3)
        row = int(line_no)
        mutants.append(Mutant(operator, row, lines[row - 1].strip(), outcome, detail))
    return mutants


def bash_mutants(results: Path) -> list[Mutant]:
    mutants = []
    for raw in results.read_text().splitlines():
        name, outcome, expression = raw.split("\t", 2)
        mutants.append(Mutant(name, None, "-", outcome, expression))
    return mutants


def explains(entry: Entry, mutant: Mutant) -> bool:
    if mutant.line_no is None:
        return entry.operator == mutant.name
    return fnmatch.fnmatchcase(mutant.name, entry.operator) and entry.line == mutant.line


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--equivalent", type=Path, required=True)
    parser.add_argument("--session", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--ast-results", type=Path)
    parser.add_argument("--label", default="", help="the operator set, for the score line")
    args = parser.parse_args()

    by_rule = 0  # surviving mutants inside unevaluated annotations
    if args.session:
        mutants, by_rule = python_mutants(args.session, args.source)
    elif args.ast_results:
        mutants = ast_mutants(args.ast_results, args.source)
    else:
        mutants = bash_mutants(args.results)
    entries = [
        e
        for e in read_equivalents(args.equivalent, args.module)
        # Each run judges the entries of its own operator set only.
        if e.operator.startswith("ast/") == bool(args.ast_results)
    ]

    used: set[Entry] = set()
    survivors, equivalent = [], []
    for mutant in mutants:
        if mutant.outcome != "survived":
            continue
        entry = next((e for e in entries if explains(e, mutant)), None)
        if entry is None:
            survivors.append(mutant)
        else:
            used.add(entry)
            equivalent.append(mutant)

    for mutant in survivors:
        if mutant.line_no is None:  # bash: the mutant's sed expression
            print(f"SURVIVED {mutant.name}: {mutant.detail}")
            continue
        print(f"SURVIVED {mutant.name} line {mutant.line_no}: {mutant.line}")
        if mutant.name.startswith("ast/"):
            print(f"    {mutant.detail}")
            continue
        for diff_line in mutant.detail.splitlines():
            if diff_line.startswith(("-", "+")) and not diff_line.startswith(("---", "+++")):
                print(f"    {diff_line}")
    for entry in entries:
        if entry not in used:
            print(
                f"STALE equivalent entry (no mutant survives it): {entry.operator} || {entry.line}"
            )

    total = len(mutants) + by_rule
    killed = sum(m.outcome == "killed" for m in mutants)
    counted = total - len(equivalent) - by_rule
    score = 100.0 * killed / counted if counted else 100.0
    if by_rule:
        print(
            f"mutation: {by_rule} surviving mutants lie inside function annotations, which"
            " `from __future__ import annotations` leaves unevaluated: counted as equivalent"
        )
    print(
        f"mutation score {args.module}{args.label}: {score:.1f}% "
        f"({killed} killed of {counted} non-equivalent; {len(equivalent) + by_rule} equivalent, "
        f"{len(survivors)} survived, {total} mutants)"
    )
    minimum = float(os.environ.get("MUTATION_MIN_SCORE", "95"))
    return 0 if score >= minimum else 1


if __name__ == "__main__":
    sys.exit(main())
