"""Score a mutation run: scripts/mutation.sh calls this; it is not a library.

A cosmic-ray session (--session), the second operator set's results (--ast-results, TSV:
operator, line, outcome, the line before -> after; scripts/mutation/ast_mutants.py) or the
bash runner's results (--results, TSV: name, outcome, sed expression). A surviving mutant
is *equivalent* when equivalent.txt has a line for it, and then it is left out of the score:

    MODULE || OPERATOR-GLOB || SOURCE-LINE || REASON   (Python: the mutated line, stripped)
    MODULE || MUTANT-NAME   || -           || REASON   (bash: the mutant's name)

(`||` separates the fields: Python code has no `||`, and `|` is an operator.)

Lines are matched by their text, not their number, so entries survive edits elsewhere
in the module. An entry that matches no surviving mutant is reported as stale, so the
file cannot quietly grow excuses for mutants that are killed today.

Score = killed / (all - equivalent); timeouts and mutants that fail to import count as
killed (the tests did notice). Exit 0 when the score reaches MUTATION_MIN_SCORE (95).
"""

from __future__ import annotations

import argparse
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


def python_mutants(session: Path, source: Path) -> list[Mutant]:
    lines = source.read_text().splitlines()
    rows = sqlite3.connect(session).execute(
        "SELECT s.operator_name, s.start_pos_row, r.worker_outcome, r.test_outcome, r.diff"
        " FROM mutation_specs s LEFT JOIN work_results r ON r.job_id = s.job_id"
        " ORDER BY s.start_pos_row, s.operator_name, s.occurrence"
    )
    mutants = []
    for operator, row, worker, test, diff in rows:
        if worker is None:
            sys.exit("mutation: the session has mutants without a result (interrupted run?)")
        survived = worker.lower() == "normal" and test.lower() == "survived"
        mutants.append(
            Mutant(
                name=operator,
                line_no=row,
                line=lines[row - 1].strip(),
                outcome="survived" if survived else "killed",
                detail=diff or "",
            )
        )
    return mutants


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

    if args.session:
        mutants = python_mutants(args.session, args.source)
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

    total = len(mutants)
    killed = sum(m.outcome == "killed" for m in mutants)
    counted = total - len(equivalent)
    score = 100.0 * killed / counted if counted else 100.0
    print(
        f"mutation score {args.module}{args.label}: {score:.1f}% "
        f"({killed} killed of {counted} non-equivalent; {len(equivalent)} equivalent, "
        f"{len(survivors)} survived, {total} mutants)"
    )
    minimum = float(os.environ.get("MUTATION_MIN_SCORE", "95"))
    return 0 if score >= minimum else 1


if __name__ == "__main__":
    sys.exit(main())
