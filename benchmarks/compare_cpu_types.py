"""Compare the 4-vCPU / 8 GiB CPU instance types for the default model, with the planner.

    .venv/bin/python -m benchmarks.compare_cpu_types [--model NAME] [--json]

Prints, per type: physical cores, estimated decode tokens/s and time to first token (the
planner's calibrated estimates, README "Performance"), the hourly price and the tokens
per dollar of sustained decoding (tokens/s x 3600 / $ per hour). The dev stack's default
instance type is chosen from this table (README "Choosing the default CPU type").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from components.models.catalog import load_catalog
from components.models.facts import load_facts_for
from components.settings import DEFAULT_MODEL
from components.sizing.instance_types import CATALOG
from components.sizing.planner import plan
from components.sizing.resources import HostResources

CANDIDATES = ("c7i.xlarge", "c7a.xlarge", "c7g.xlarge", "c8g.xlarge")
"""The 4-vCPU / 8 GiB types: Intel (2 physical cores), AMD (4), Graviton3 and 4 (4)."""


def compare(model: str, candidates: Sequence[str] = CANDIDATES) -> list[dict[str, object]]:
    catalog = load_catalog()
    facts = load_facts_for([model])
    rows = []
    for name in candidates:
        instance = CATALOG[name]
        sized = plan(
            HostResources.from_instance_type(instance),
            facts,
            use_gpu=False,
            context_size={model: catalog[model].context_size},
            parallel_requests=1,
        )
        tps = sized.estimated_tokens_per_second or 0.0
        rows.append(
            {
                "type": name,
                "arch": instance.arch,
                "physical_cores": instance.physical_cores,
                "tokens_per_second": tps,
                "ttft_ms": sized.estimated_ttft_ms,
                "usd_per_hour": instance.hourly_usd,
                "tokens_per_dollar": round(tps * 3600 / instance.hourly_usd),
            }
        )
    return rows


def format_table(model: str, rows: list[dict[str, object]]) -> str:
    lines = [
        f"{model}, Q4_K_M, one request at a time (planner estimates)",
        f"{'type':<12} {'arch':<7} {'cores':>5} {'tok/s':>6} {'TTFT ms':>8} {'$/h':>8} "
        f"{'tokens/$':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r['type']:<12} {r['arch']:<7} {r['physical_cores']:>5} "
            f"{r['tokens_per_second']:>6.1f} {r['ttft_ms']:>8} {r['usd_per_hour']:>8.4f} "
            f"{r['tokens_per_dollar']:>9,}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_cpu_types")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = compare(args.model)
    print(json.dumps(rows, indent=2) if args.json else format_table(args.model, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
