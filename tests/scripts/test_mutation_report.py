"""scripts/mutation/report.py: the score, the equivalent-mutant matching and the exit code.

The report reads a cosmic-ray session (its sqlite tables) or the bash runner's TSV; both
are written here by hand, so the arithmetic is checked without running cosmic-ray.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "scripts" / "mutation" / "report.py"
SOURCE = "x = 1\nif x > 1:\n    y = a | b\n"


Span = tuple[int, int, int, int]  # start row, start col, end row, end col


def session(path: Path, outcomes: list[tuple[str, int, str, str]],
            spans: list[Span] | None = None) -> Path:  # fmt: skip
    """outcomes: (operator, line, worker outcome, test outcome) per mutant; spans: where
    each mutant lies (default: columns 0 to 1 of its line)."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE mutation_specs (module_path, operator_name, operator_args, occurrence,"
        " start_pos_row, start_pos_col, end_pos_row, end_pos_col, definition_name, job_id)"
    )
    db.execute("CREATE TABLE work_results (worker_outcome, output, test_outcome, diff, job_id)")
    for number, (operator, line, worker, test) in enumerate(outcomes):
        row, col, end_row, end_col = spans[number] if spans else (line, 0, line, 1)
        db.execute(
            "INSERT INTO mutation_specs VALUES ('m.py', ?, '{}', 0, ?, ?, ?, ?, 'f', ?)",
            (operator, row, col, end_row, end_col, str(number)),
        )
        db.execute(
            "INSERT INTO work_results VALUES (?, '', ?, '--- a\n+++ b\n-old\n+new\n', ?)",
            (worker, test, str(number)),
        )
    db.commit()
    db.close()
    return path


def report(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, str(REPORT), "--module", "m.py", *args],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    return path


def test_the_score_leaves_listed_equivalents_out(tmp_path: Path, source: Path) -> None:
    db = session(
        tmp_path / "s.sqlite",
        [
            ("core/NumberReplacer", 1, "NORMAL", "KILLED"),
            ("core/ReplaceComparisonOperator_Gt_GtE", 2, "NORMAL", "KILLED"),
            ("core/ReplaceComparisonOperator_Gt_NotEq", 2, "NORMAL", "SURVIVED"),
            ("core/ReplaceBinaryOperator_BitOr_Add", 3, "NORMAL", "SURVIVED"),
            ("core/ReplaceBinaryOperator_BitOr_Sub", 3, "TIMEOUT", "KILLED"),
        ],
    )
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text(
        "# comment\n"
        "m.py || core/ReplaceBinaryOperator_BitOr_* || y = a | b || an annotation-like case\n"
        "other.py || core/NumberReplacer || x = 1 || another module's entry is ignored\n"
    )
    result = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                    "--session", str(db))  # fmt: skip
    # 3 killed (a timeout counts), 1 equivalent, 1 survivor: 3 / 4.
    assert result.stdout.splitlines()[-1] == (
        "mutation score m.py: 75.0% (3 killed of 4 non-equivalent; 1 equivalent, 1 survived, "
        "5 mutants)"
    )
    assert "SURVIVED core/ReplaceComparisonOperator_Gt_NotEq line 2: if x > 1:" in result.stdout
    assert "    -old" in result.stdout and "    +new" in result.stdout
    assert result.returncode == 1, "below 90%"
    relaxed = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                     "--session", str(db), env={"MUTATION_MIN_SCORE": "75"})  # fmt: skip
    assert relaxed.returncode == 0


def test_an_entry_no_survivor_matches_is_reported_stale(tmp_path: Path, source: Path) -> None:
    db = session(tmp_path / "s.sqlite", [("core/NumberReplacer", 1, "NORMAL", "KILLED")])
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("m.py || core/NumberReplacer || x = 1 || killed today\n")
    result = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                    "--session", str(db))  # fmt: skip
    assert "STALE equivalent entry (no mutant survives it): core/NumberReplacer || x = 1" in (
        result.stdout
    )
    assert result.returncode == 0
    assert "100.0% (1 killed of 1 non-equivalent" in result.stdout


def test_an_unfinished_session_is_refused(tmp_path: Path, source: Path) -> None:
    db = session(tmp_path / "s.sqlite", [("core/NumberReplacer", 1, "NORMAL", "KILLED")])
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM work_results")
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("")
    result = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                    "--session", str(db))  # fmt: skip
    assert result.returncode != 0
    assert "without a result" in result.stderr


def test_a_malformed_equivalent_line_names_its_place(tmp_path: Path, source: Path) -> None:
    db = session(tmp_path / "s.sqlite", [("core/NumberReplacer", 1, "NORMAL", "KILLED")])
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("\nm.py || core/NumberReplacer || x = 1\n")
    result = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                    "--session", str(db))  # fmt: skip
    assert result.returncode != 0
    assert f"{equivalent}:2: want 'MODULE || OPERATOR || LINE || REASON'" in result.stderr


def test_bash_results_match_equivalents_by_mutant_name(tmp_path: Path) -> None:
    results = tmp_path / "results.tsv"
    results.write_text(
        "guard-a\tkilled\ts/a/b/\nguard-b\tsurvived\ts/c/d/\nguard-c\tsurvived\ts/e/f/\n"
    )
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("m.py || guard-c || - || unreachable on Linux\n")
    result = report(tmp_path, "--equivalent", str(equivalent), "--results", str(results))
    assert "SURVIVED guard-b: s/c/d/" in result.stdout
    assert "guard-c" not in result.stdout.split("mutation score")[0]
    assert result.stdout.splitlines()[-1] == (
        "mutation score m.py: 50.0% (1 killed of 2 non-equivalent; 1 equivalent, 1 survived, "
        "3 mutants)"
    )


ANNOTATED = """\
from __future__ import annotations


def f(a: int | None, *rest: str | bytes) -> int | None:
    return a | 1


class C:
    field: int | None = None
"""


def annotated_session(tmp_path: Path) -> Path:
    # Every mutant survives: where it lies decides whether the rule covers it.
    bit_or = "core/ReplaceBinaryOperator_BitOr_BitAnd"
    return session(
        tmp_path / "s.sqlite",
        [(bit_or, 4, "NORMAL", "SURVIVED")] * 3 + [(bit_or, 5, "NORMAL", "SURVIVED"),
                                                   (bit_or, 9, "NORMAL", "SURVIVED")],
        # cosmic-ray's span of a binary operator mutant is the operator itself.
        spans=[
            (4, 13, 4, 14),  # in a's annotation `int | None`
            (4, 32, 4, 33),  # in *rest's annotation `str | bytes`
            (4, 48, 4, 49),  # in the return annotation
            (5, 13, 5, 14),  # in the body: evaluated
            (9, 15, 9, 16),  # in a class body's annotation: pydantic and dataclasses read it
        ],
    )  # fmt: skip


def test_survivors_inside_unevaluated_function_annotations_are_equivalent_by_rule(
    tmp_path: Path,
) -> None:
    source = tmp_path / "m.py"
    source.write_text(ANNOTATED)
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("")
    result = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                    "--session", str(annotated_session(tmp_path)))  # fmt: skip
    lines = result.stdout.splitlines()
    assert "SURVIVED core/ReplaceBinaryOperator_BitOr_BitAnd line 5: return a | 1" in lines
    assert "SURVIVED core/ReplaceBinaryOperator_BitOr_BitAnd line 9: field: int | None = None" in (
        lines
    )
    assert sum(line.startswith("SURVIVED") for line in lines) == 2
    assert lines[-2].startswith("mutation: 3 surviving mutants lie inside function annotations")
    assert lines[-1] == (
        "mutation score m.py: 0.0% (0 killed of 2 non-equivalent; 3 equivalent, 2 survived, "
        "5 mutants)"
    )


@pytest.mark.parametrize(
    "change",
    [
        # annotations evaluated at def time (a comment keeps the line numbers)
        ("from __future__ import annotations\n", "# no postponed annotations\n"),
        ("    return a | 1\n", "    return typing.get_type_hints(f)\n"),  # read back
        ("    return a | 1\n", "    return f.__annotations__\n"),
    ],
)
def test_the_annotation_rule_holds_only_where_annotations_stay_unevaluated(
    tmp_path: Path, change: tuple[str, str]
) -> None:
    source = tmp_path / "m.py"
    source.write_text(ANNOTATED.replace(*change))
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("")
    result = report(tmp_path, "--equivalent", str(equivalent), "--source", str(source),
                    "--session", str(annotated_session(tmp_path)))  # fmt: skip
    assert "function annotations" not in result.stdout
    assert sum(line.startswith("SURVIVED") for line in result.stdout.splitlines()) == 5


SKIP = REPO / "scripts" / "mutation" / "skip_annotations.py"


def test_annotation_mutants_are_skipped_before_exec_and_scored_by_the_rule(
    tmp_path: Path,
) -> None:
    # A real cosmic-ray session of ANNOTATED: init, skip, exec (a test command that fails,
    # so every mutant that runs is killed), report.
    pytest.importorskip("cosmic_ray")
    (tmp_path / "m.py").write_text(ANNOTATED)
    config = tmp_path / "config.toml"
    config.write_text(
        '[cosmic-ray]\nmodule-path = "m.py"\ntimeout = 30\nexcluded-modules = []\n'
        'test-command = "false"\n\n[cosmic-ray.distributor]\nname = "local"\n'
    )
    db = tmp_path / "s.sqlite"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)

    run(sys.executable, "-m", "cosmic_ray.cli", "init", str(config), str(db))
    skipped = run(sys.executable, str(SKIP), str(db), str(tmp_path / "m.py"))
    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT s.start_pos_row, s.start_pos_col, r.worker_outcome FROM mutation_specs s"
            " LEFT JOIN work_results r ON r.job_id = s.job_id WHERE s.operator_name LIKE"
            " '%BitOr%'"
        )
        .fetchall()
    )
    by_place = {}
    for row, col, outcome in rows:
        by_place.setdefault((row, col), set()).add(outcome)
    # The three annotations' `|` are skipped, every operator of each; the body's is not.
    # (cosmic-ray does not mutate the class body's annotation.)
    assert by_place == {(4, 13): {"SKIPPED"}, (4, 32): {"SKIPPED"}, (4, 48): {"SKIPPED"},
                        (5, 13): {None}}  # fmt: skip
    count = (
        sqlite3.connect(db)
        .execute("SELECT count(*) FROM work_results WHERE worker_outcome = 'SKIPPED'")
        .fetchone()[0]
    )
    assert count == len(rows) * 3 // 4  # 3 of the 4 places, each with every operator
    assert skipped.stdout == (
        f"mutation: {count} mutants inside unevaluated annotations skipped (not run)\n"
    )
    run(sys.executable, "-m", "cosmic_ray.cli", "exec", str(config), str(db))
    equivalent = tmp_path / "eq.txt"
    equivalent.write_text("")
    result = report(tmp_path, "--equivalent", str(equivalent), "--source",
                    str(tmp_path / "m.py"), "--session", str(db))  # fmt: skip
    lines = result.stdout.splitlines()
    assert not any(line.startswith("SURVIVED") for line in lines)
    assert lines[-2].startswith(f"mutation: {count} surviving mutants lie inside")
    assert lines[-1].startswith("mutation score m.py: 100.0%")
