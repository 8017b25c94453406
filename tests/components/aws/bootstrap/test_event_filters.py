"""The metric filters against the lines the real scripts write (run with stand-ins, as in
test_scripts.py and test_fleet_scripts.py), and against LocalAI's request log format."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.aws.observability import HOST_EVENTS
from tests.components.aws.bootstrap.test_fleet_scripts import (  # noqa: F401 (a fixture)
    FleetHost,
    fleet_host,
    with_conf,
)
from tests.components.aws.bootstrap.test_scripts import TINY_WEIGHTS_FILE, Host
from tests.support.cloudwatch_patterns import matches

PATTERNS = {event.metric: event.pattern for event in HOST_EVENTS}


def counted(lines: list[str]) -> dict[str, int]:
    """How many of ``lines`` each metric filter counts (only the non-zero ones)."""
    counts = {metric: sum(matches(p, line) for line in lines) for metric, p in PATTERNS.items()}
    return {metric: n for metric, n in counts.items() if n}


def test_the_pattern_matcher_follows_cloudwatchs_term_rules() -> None:
    assert matches('"a b" "c"', "x a b y c")
    assert not matches('"a b" "c"', "x a y c")  # a quoted term is one exact phrase
    assert not matches('"A"', "a")  # case-sensitive
    assert matches('"url=" -"/readyz"', "url=/v1/chat")
    assert not matches('"url=" -"/readyz"', "url=/readyz")
    with pytest.raises(ValueError, match="unsupported"):
        matches("%ERR.*%", "ERR")


def test_a_plain_start_counts_nothing(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False, "log_group": ""})
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert "localai-boot:" in result.stderr
    assert counted(result.stderr.splitlines()) == {}


def test_a_second_start_in_one_boot_is_one_restart(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False, "log_group": ""})
    first, second = host.run(), host.run()
    assert first.returncode == second.returncode == 0, second.stderr
    assert counted(first.stderr.splitlines()) == {}
    assert counted(second.stderr.splitlines()) == {"Restarts": 1}
    # A new boot empties the run directory (it lives in /run): no restart then.
    (host.run_dir / "started").unlink()
    assert counted(host.run().stderr.splitlines()) == {}


def test_a_gpu_host_on_its_cpu_is_one_gpu_fallback(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": True, "log_group": ""})
    result = host.run(STUB_NVIDIA_SMI="fail")
    assert result.returncode == 0, result.stderr
    assert counted(result.stderr.splitlines()) == {"GpuFallbacks": 1}


def test_weights_that_fail_their_check_are_one_fetch_failure(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False, "log_group": ""})
    (host.mount / "models" / TINY_WEIGHTS_FILE).write_bytes(b"tampered")
    result = host.run(PATH=f"{host.stubs}:{host.root}/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin")
    assert result.returncode != 0
    assert counted(result.stderr.splitlines()) == {"FetchFailures": 1}


@pytest.mark.parametrize(("service_result", "abandons"), [("success", 0), ("exit-code", 1)])
def test_a_warm_up_that_failed_is_one_lifecycle_abandon(
    fleet_host: FleetHost,  # noqa: F811 (the imported fixture)
    service_result: str,
    abandons: int,
) -> None:
    with_conf(fleet_host)
    result = fleet_host.run(
        "localai-lifecycle",
        "complete",
        SERVICE_RESULT=service_result,
        PATH=f"{fleet_host.stubs}:{fleet_host.root}/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        LOCALAI_UPTIME_FILE="/proc/uptime",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any("phase=lifecycle_result" in line for line in lines)
    assert counted(lines) == ({"LifecycleAbandons": 1} if abandons else {})


# LocalAI v2.24.0 logs through zerolog's ConsoleWriter (main.go, colours on) and fiberzerolog
# (core/http/app.go: default fields latency, status, method, url, error; message "Server
# error" for >= 500, "Client error" for >= 400, "Success" otherwise). Written out from those
# sources: no LocalAI binary runs here.
def _request(level: str, message: str, status: int, url: str) -> str:
    field = "\x1b[36m{0}=\x1b[0m{1}".format
    return (
        f"\x1b[90m5:04PM\x1b[0m {level} {message} "
        + " ".join([field("latency", "1.2s"), field("method", "POST"), field("status", status),
                    field("url", url)])
    )  # fmt: skip


def test_localai_request_lines_count_as_requests_and_server_errors() -> None:
    lines = [
        _request("\x1b[32mINF\x1b[0m", "Success", 200, "/v1/chat/completions"),
        _request("\x1b[33mWRN\x1b[0m", "Client error", 401, "/v1/models"),
        _request("\x1b[31mERR\x1b[0m", "Server error", 500, "/v1/chat/completions"),
        _request("\x1b[32mINF\x1b[0m", "Success", 200, "/readyz"),
        "\x1b[90m5:04PM\x1b[0m \x1b[32mINF\x1b[0m Loading model 'phi-3.5-mini-instruct'",
    ]
    assert counted(lines) == {"Requests": 3, "ServerErrors": 1}
