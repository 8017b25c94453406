"""Cost outputs and the preview's cost lines, for each shipped stack under the mocks."""

from __future__ import annotations

import json
import math

import pulumi
import pytest

from components.sizing.instance_types import lookup
from tests.support.program_run import localai_keys, run_program
from tests.support.pulumi_mocks import RecordingMocks, stack_config

PRICEY = {"inputUsdPer1M": 3.0, "outputUsdPer1M": 15.0}
CHEAP = {"inputUsdPer1M": 0.15, "outputUsdPer1M": 0.6}


def run(stack: str, monkeypatch: pytest.MonkeyPatch, **extra: str) -> tuple[dict, list[str]]:
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *a, **k: said.append(message))
    outputs = run_program({**localai_keys(stack_config(stack)), **extra}, stack=stack).outputs
    return outputs, said


@pytest.mark.parametrize(("stack", "instance"), [("dev", "c7a.xlarge"), ("gpu", "g6.xlarge")])
def test_a_single_vm_states_its_month_and_its_price_per_million_tokens(
    stack: str, instance: str, pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, said = run(stack, monkeypatch)
    hourly = lookup(instance).hourly_usd
    assert outputs["runningHoursPerMonth"] == 730.0
    assert outputs["monthlyCostUsd"] == round(hourly * 730, 2)
    full = outputs["usdPerMillionOutputTokens"]
    assert full > 0
    assert outputs["expectedUtilisation"] == 0.25
    assert outputs["usdPerMillionOutputTokensAtUtilisation"] == pytest.approx(full * 4, abs=2e-4)
    # Without a hosted price, no break-even is invented: a line says how to get one.
    assert "breakEvenRequestsPerDay" not in outputs
    assert any(line.startswith("break-even: set localai:compareWith") for line in said)
    assert any(
        line.startswith(f"cost per million output tokens on {instance}: ${full:.4f}")
        for line in said
    )
    assert any(
        line.startswith(f"cost: ${hourly * 730:,.2f} a month: 730.0 hours of") for line in said
    )


def test_the_break_even_is_the_daily_cost_over_the_hosted_request(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, said = run("gpu", monkeypatch, compareWith=json.dumps(PRICEY))
    daily = lookup("g6.xlarge").hourly_usd * 24
    per_request = (64 * 3.0 + 256 * 15.0) / 1e6
    assert outputs["breakEvenRequestsPerDay"] == math.ceil(daily / per_request)
    assert outputs["breakEvenRequestsPerDay"] < outputs["capacityRequestsPerDay"]
    assert any(
        line.startswith(f"break-even: {outputs['breakEvenRequestsPerDay']:,} requests a day")
        for line in said
    )


def test_against_a_cheap_model_the_answer_is_never_and_the_line_says_why(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, said = run("dev", monkeypatch, compareWith=json.dumps(CHEAP))
    assert outputs["breakEvenRequestsPerDay"] == "never"
    assert any(line.startswith("break-even: never.") for line in said)


def test_the_request_shape_and_utilisation_are_the_stacks(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = run("gpu", monkeypatch, compareWith=json.dumps(PRICEY))
    longer, said = run(
        "gpu",
        monkeypatch,
        compareWith=json.dumps({**PRICEY, "inputTokensPerRequest": 640}),
        expectedUtilisation="0.5",
    )
    # Ten times the prompt: each request takes longer, so a million tokens cost more...
    assert longer["usdPerMillionOutputTokens"] > base["usdPerMillionOutputTokens"]
    assert longer["capacityRequestsPerDay"] < base["capacityRequestsPerDay"]
    # ...and the hosted request costs more too, so fewer requests break even.
    assert longer["breakEvenRequestsPerDay"] < base["breakEvenRequestsPerDay"]
    assert longer["expectedUtilisation"] == 0.5
    assert longer["usdPerMillionOutputTokensAtUtilisation"] == pytest.approx(
        longer["usdPerMillionOutputTokens"] * 2, abs=2e-4
    )
    assert any("640-token prompts" in line for line in said)


def test_a_fleet_prices_each_type_and_its_minimum_with_the_load_balancer(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, said = run("prod", monkeypatch, compareWith=json.dumps(PRICEY))
    types = outputs["instanceTypes"].split(",")
    by_type = dict(
        item.split("=") for item in outputs["usdPerMillionOutputTokensByType"].split(",")
    )
    assert list(by_type) == types
    assert float(by_type[types[0]]) == outputs["usdPerMillionOutputTokens"]
    fleet = json.loads(stack_config("prod")["localai:fleet"])
    hourly = fleet["minSize"] * lookup(types[0]).hourly_usd + 0.0225
    assert outputs["monthlyCostUsd"] == round(hourly * 730, 2)
    assert outputs["breakEvenRequestsPerDay"] == math.ceil(hourly * 24 / 0.004032)
    assert sum(line.startswith("cost per million output tokens on ") for line in said) == len(types)
    assert any("load balancer" in line for line in said)


def test_the_local_target_has_no_price_and_says_nothing_of_cost(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, said = run("local", monkeypatch)
    assert not {"monthlyCostUsd", "usdPerMillionOutputTokens"} & set(outputs)
    assert not any(line.startswith("cost") for line in said)
