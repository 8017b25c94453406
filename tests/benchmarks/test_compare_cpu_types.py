"""benchmarks/compare_cpu_types.py: the table the dev stack's default type is chosen from."""

from __future__ import annotations

import yaml

from benchmarks.compare_cpu_types import CANDIDATES, compare, format_table
from components.settings import DEFAULT_CPU_INSTANCE_TYPE
from tests.support.pulumi_mocks import STACKS_DIR


def test_every_4_vcpu_8_gib_type_is_compared_with_its_arithmetic() -> None:
    rows = compare("phi-3.5-mini-instruct")
    assert [r["type"] for r in rows] == list(CANDIDATES)
    for row in rows:
        assert row["tokens_per_dollar"] == round(
            row["tokens_per_second"] * 3600 / row["usd_per_hour"]
        )
    table = format_table("phi-3.5-mini-instruct", rows)
    assert all(name in table for name in CANDIDATES)


def test_the_default_is_the_fastest_x86_type_of_the_table() -> None:
    """The rule README states: the fastest calibrated (x86_64) estimate; Graviton's are
    literature-based, so it is the documented cheaper alternative, not the default."""
    rows = compare("phi-3.5-mini-instruct")
    x86 = [r for r in rows if r["arch"] == "x86_64"]
    fastest = min(x86, key=lambda r: r["ttft_ms"])
    assert fastest["type"] == DEFAULT_CPU_INSTANCE_TYPE
    dev = yaml.safe_load((STACKS_DIR / "Pulumi.dev.yaml").read_text())["config"]
    assert dev["localai:instanceType"] == DEFAULT_CPU_INSTANCE_TYPE
    c7i = next(r for r in rows if r["type"] == "c7i.xlarge")
    assert fastest["tokens_per_second"] > 1.5 * c7i["tokens_per_second"]
