"""components/readiness/waiter.py against a real llama.cpp server, closed ports and stubs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.readiness.waiter import (
    REFUSED,
    EndpointNotReady,
    backoff_delays,
    wait_until_ready,
)
from tests.support.llama_server import LlamaServer, free_port
from tests.support.stub_openai import StubServer, hang, json_reply

REPO = Path(__file__).resolve().parents[3]


def closed_base_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


class FakeClock:
    """Injected clock/sleep: sleeping advances time instantly and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


# --- real llama.cpp server ------------------------------------------------------------


@pytest.mark.slow
def test_ready_server_returns_on_the_first_attempt(llama_server: LlamaServer) -> None:
    result = wait_until_ready(
        llama_server.base_url, llama_server.api_key, llama_server.model, timeout_s=30
    )
    assert result.attempts == 1
    assert 0 < result.latency_s <= result.elapsed_s < 30
    assert isinstance(result.first_token, str)


@pytest.mark.slow
def test_waits_for_a_server_that_starts_later(llama_server_factory) -> None:
    server: LlamaServer = llama_server_factory(delay_s=2.0)
    lines: list[str] = []
    start = time.monotonic()
    result = wait_until_ready(
        server.base_url,
        server.api_key,
        server.model,
        timeout_s=60,
        initial_delay_s=0.25,
        max_delay_s=1.0,
        log=lines.append,
    )
    assert time.monotonic() - start >= 2.0
    assert result.attempts > 2
    assert result.elapsed_s >= 2.0
    assert any(REFUSED in line for line in lines), lines  # what it saw while waiting
    assert "ready" in lines[-1]


@pytest.mark.slow
def test_wrong_key_fails_fast_with_401(llama_server: LlamaServer) -> None:
    start = time.monotonic()
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            llama_server.base_url,
            "sk-wrong",
            llama_server.model,
            timeout_s=300,
            initial_delay_s=0.1,
        )
    assert time.monotonic() - start < 10  # not the 300 s timeout
    message = str(caught.value)
    assert "HTTP 401 (API key rejected)" in message
    assert "OPENAI_API_KEY" in message
    assert llama_server.base_url in message
    assert caught.value.attempts == 3


@pytest.mark.slow
def test_recovers_when_a_stopped_server_comes_back(llama_server_factory) -> None:
    server: LlamaServer = llama_server_factory()
    server.stop()
    server.start_after(1.0)
    result = wait_until_ready(
        server.base_url,
        server.api_key,
        server.model,
        timeout_s=60,
        initial_delay_s=0.25,
        max_delay_s=0.5,
    )
    assert result.attempts > 1


# --- failures that never fix themselves: bounded, explained ---------------------------


def test_closed_port_fails_within_the_timeout_saying_connection_refused() -> None:
    base_url = closed_base_url()
    start = time.monotonic()
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(base_url, "sk-x", "m", timeout_s=2.0, initial_delay_s=0.2)
    took = time.monotonic() - start
    assert 2.0 <= took < 4.0
    message = str(caught.value)
    assert message.startswith(f"{base_url}/chat/completions not ready after ")
    assert "last seen: connection refused (the server is not listening yet" in message
    assert caught.value.attempts >= 3


def test_503_is_reported_with_its_body() -> None:
    body = {"error": {"message": "model is loading, please wait", "code": 503}}
    with StubServer(json_reply(503, body)) as stub, pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(stub.base_url, "sk-x", "m", timeout_s=1.0, initial_delay_s=0.2)
    assert "last seen: HTTP 503: model is loading, please wait" in str(caught.value)
    assert len(stub.requests) >= 2  # 5xx is retried


def test_probe_is_a_one_token_chat_completion_with_the_key() -> None:
    with StubServer(json_reply(500, {"detail": "boom"})) as stub, pytest.raises(EndpointNotReady):
        wait_until_ready(stub.base_url + "/", "sk-secret", "my-model", timeout_s=0.1)
    request = stub.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-secret"
    assert request["body"]["model"] == "my-model"
    assert request["body"]["max_tokens"] == 1


def test_200_without_choices_is_not_ready() -> None:
    stub = StubServer(json_reply(200, {"status": "ok"}))
    with stub, pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(stub.base_url, "sk-x", "m", timeout_s=0.5, initial_delay_s=0.2)
    assert "HTTP 200 but the body is not a chat completion" in str(caught.value)


def test_403_fails_fast_too() -> None:
    stub = StubServer(json_reply(403, {"error": {"message": "forbidden"}}))
    with stub, pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(stub.base_url, "sk-x", "m", timeout_s=60, initial_delay_s=0.05)
    assert "HTTP 403 (forbidden: forbidden)" in str(caught.value)
    assert len(stub.requests) == 3


def test_a_hanging_server_is_reported_as_timed_out() -> None:
    with StubServer(hang()) as stub, pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            stub.base_url,
            "sk-x",
            "m",
            timeout_s=1.5,
            request_timeout_s=1.0,
            initial_delay_s=0.2,
        )
    assert "timed out after 1.0s waiting for the answer" in str(caught.value)


def test_dns_failure_is_named() -> None:
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready("http://no-such-host.invalid:8080/v1", "k", "m", timeout_s=0.5)
    assert "DNS lookup failed for no-such-host.invalid:8080" in str(caught.value)


# --- backoff ---------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    delays = backoff_delays(1.0, 15.0)
    assert [next(delays) for _ in range(7)] == [1, 2, 4, 8, 15, 15, 15]
    with pytest.raises(ValueError):
        backoff_delays(0, 1)
    with pytest.raises(ValueError):
        wait_until_ready("http://127.0.0.1:1/v1", "k", "m", max_delay_s=0)


def test_waiter_sleeps_grow_are_capped_and_stop_at_the_deadline() -> None:
    fake = FakeClock()
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            closed_base_url(),
            "sk-x",
            "m",
            timeout_s=60,
            initial_delay_s=1,
            max_delay_s=15,
            clock=fake.clock,
            sleep=fake.sleep,
        )
    # 1+2+4+8+15+15 = 45, then the last sleep is cut to the 15 s left before the deadline.
    assert fake.sleeps == [1, 2, 4, 8, 15, 15, 15]
    assert sum(fake.sleeps) == 60
    assert caught.value.attempts == len(fake.sleeps) + 1  # one last look at the deadline
    assert "not ready after 60s (8 attempts)" in str(caught.value)


def test_progress_is_logged_once_per_change_and_every_minute() -> None:
    fake = FakeClock()
    lines: list[str] = []
    with pytest.raises(EndpointNotReady):
        wait_until_ready(
            closed_base_url(),
            "k",
            "m",
            timeout_s=300,
            initial_delay_s=10,
            max_delay_s=10,
            clock=fake.clock,
            sleep=fake.sleep,
            log=lines.append,
        )
    assert len(fake.sleeps) == 30
    assert 5 <= len(lines) <= 6  # at 0 s, then about once a minute, not 30 lines
    assert all(REFUSED in line for line in lines)


# --- CLI -------------------------------------------------------------------------------


def run_cli(*args: str, key: str | None, isolated: bool = False) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    # -S (no site-packages) proves the module needs nothing but the standard library.
    flags = ["-S"] if isolated else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "components.readiness.waiter", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_cli_exits_0_when_ready_using_only_the_standard_library(
    llama_server: LlamaServer,
) -> None:
    result = run_cli(
        "--base-url",
        llama_server.base_url,
        "--model",
        llama_server.model,
        "--timeout",
        "30",
        key=llama_server.api_key,
        isolated=True,
    )
    assert result.returncode == 0, result.stderr
    assert "ready:" in result.stderr
    assert llama_server.api_key not in result.stderr + result.stdout


def test_cli_exits_1_with_one_line_when_not_ready() -> None:
    base_url = closed_base_url()
    result = run_cli(
        "--base-url",
        base_url,
        "--model",
        "m",
        "--timeout",
        "1",
        "--initial-delay",
        "0.2",
        key="sk-x",
        isolated=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert base_url in errors[0] and "connection refused" in errors[0]
    assert result.stderr.splitlines()[-1] == errors[0]
    assert any(line.startswith("readiness: attempt 1") for line in result.stderr.splitlines())


def test_cli_ends_its_error_line_with_the_hint() -> None:
    result = run_cli(
        "--base-url", closed_base_url(), "--model", "m", "--timeout", "0.5",
        "--initial-delay", "0.2", "--hint", "Check localai:allowedCidrs.",
        key="sk-x", isolated=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(". Check localai:allowedCidrs.")


def test_cli_requires_the_key_in_the_environment() -> None:
    result = run_cli("--base-url", "http://127.0.0.1:1/v1", "--model", "m", key=None)
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert "--api-key" not in run_cli("--help", key=None).stdout  # never on the command line


def test_importing_it_does_not_import_pulumi() -> None:
    code = "import sys, components.readiness.waiter; print('pulumi' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "False", result.stderr


# --- key rotation (issue 9, defect 6) ------------------------------------------------------

COMPLETION = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}


def keyed(good_key: str, *, reject_first: int = 0):
    """A server that accepts only ``good_key``, and rejects every key for its first
    ``reject_first`` requests (a host still loading a rotated key)."""
    seen = {"n": 0}

    def respond(handler) -> None:
        seen["n"] += 1
        auth = handler.headers.get("Authorization", "")
        ok = seen["n"] > reject_first and auth == f"Bearer {good_key}"
        json_reply(200, COMPLETION)(handler) if ok else json_reply(
            401, {"error": {"message": "An api key is required"}}
        )(handler)

    return respond


def test_rejections_during_the_grace_period_are_retried() -> None:
    with StubServer(keyed("sk-new", reject_first=4)) as stub:
        result = wait_until_ready(
            stub.base_url, "sk-new", "m", timeout_s=30, initial_delay_s=0.05, auth_grace_s=20
        )
    assert result.attempts == 5


def test_without_a_grace_period_three_rejections_still_fail_fast() -> None:
    with StubServer(keyed("sk-new", reject_first=4)) as stub, pytest.raises(EndpointNotReady):
        wait_until_ready(stub.base_url, "sk-new", "m", timeout_s=30, initial_delay_s=0.05)
    assert len(stub.requests) == 3


def test_rejections_after_the_grace_period_fail_fast() -> None:
    with StubServer(keyed("sk-other")) as stub, pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            stub.base_url, "sk-new", "m", timeout_s=30, initial_delay_s=0.3, auth_grace_s=0.5
        )
    assert "rejected the API key 3 times in a row" in str(caught.value)


def test_a_server_that_enforces_the_key_passes_the_other_key_check() -> None:
    with StubServer(keyed("sk-new")) as stub:
        wait_until_ready(stub.base_url, "sk-new", "m", timeout_s=5, check_other_key_refused=True)
    keys = [r["headers"]["authorization"] for r in stub.requests]
    assert keys == ["Bearer sk-new", "Bearer sk-new-not-this-key"]


def test_a_server_that_accepts_any_key_fails_the_other_key_check() -> None:
    with StubServer(json_reply(200, COMPLETION)) as stub, pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(stub.base_url, "sk-new", "m", timeout_s=5, check_other_key_refused=True)
    assert "also accepted a different key" in str(caught.value)


def test_the_real_server_refuses_another_key(llama_server: LlamaServer) -> None:
    wait_until_ready(
        llama_server.base_url,
        llama_server.api_key,
        llama_server.model,
        timeout_s=60,
        check_other_key_refused=True,
    )


# --- local fetch errors surface in seconds (issue 10) ---------------------------------------


def stub_docker(tmp_path: Path, log_text: str, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "docker.log").write_text(log_text)
    script = bin_dir / "docker"
    script.write_text(f'#!/bin/sh\n[ "$1" = logs ] && cat {tmp_path / "docker.log"} >&2\nexit 0\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_a_fetch_error_in_the_container_log_ends_the_wait_at_once(
    tmp_path: Path, monkeypatch
) -> None:
    stub_docker(
        tmp_path,
        "localai-fetch: x.gguf: downloading (attempt 1/5)\n"
        "localai-fetch: error: sha256 mismatch for x.gguf: expected aa, got bb (twice; ...)\n",
        monkeypatch,
    )
    started = time.monotonic()
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            "http://127.0.0.1:9/v1", "k", "m", timeout_s=600, initial_delay_s=0.05,
            docker_container="localai-test",
        )  # fmt: skip
    assert time.monotonic() - started < 10
    assert (
        "the container localai-test reports 'localai-fetch: error: sha256 mismatch for x.gguf"
        in str(caught.value)
    )


def test_a_stalled_download_is_reported_while_the_wait_goes_on(tmp_path: Path, monkeypatch) -> None:
    stub_docker(
        tmp_path,
        "localai-fetch: download of x.gguf stalled (under 1 KiB/s for 60s, ...); retrying in 5s\n",
        monkeypatch,
    )
    lines: list[str] = []
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            "http://127.0.0.1:9/v1", "k", "m", timeout_s=1.0, initial_delay_s=0.2,
            docker_container="localai-test", log=lines.append,
        )  # fmt: skip
    assert "not ready after" in str(caught.value), "a stall is not a failure by itself"
    assert any("localai-test: localai-fetch: download of x.gguf stalled" in line for line in lines)


def test_a_finished_fetch_in_the_log_is_no_error(tmp_path: Path, monkeypatch) -> None:
    stub_docker(
        tmp_path,
        "localai-fetch: error: download of x.gguf failed: HTTP 503\n"
        "localai-fetch: all 1 files present and verified in /build/models\n",
        monkeypatch,
    )
    with pytest.raises(EndpointNotReady) as caught:
        wait_until_ready(
            "http://127.0.0.1:9/v1", "k", "m", timeout_s=0.6, initial_delay_s=0.2,
            docker_container="localai-test",
        )  # fmt: skip
    assert "not ready after" in str(caught.value)


# -- issue 18, item 33: a model that does not load ends the wait with its cause -------------

LOAD_FAILED = {
    "error": {
        "code": 500,
        "message": "could not load model: rpc error: code = Unavailable desc = error reading "
        "from server: EOF",
        "type": "",
    }
}


def test_a_model_that_keeps_failing_to_load_ends_the_wait_without_the_hour(
    tmp_path: Path, monkeypatch
) -> None:
    """LocalAI answers 500 'could not load model' at every request; the wait ran its full
    hour. Five in a row end it, with the backend's own last words from the container."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    container_tmp = tmp_path / "container-tmp" / "go-processmanager123"
    container_tmp.mkdir(parents=True)
    (container_tmp / "stderr").write_text("error loading model: invalid magic characters\n")
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        '[ "$1" = exec ] || exit 0\n'  # `docker logs`: nothing from the fetcher
        f'exec sh -c "$(printf %s "$5" | sed "s#/tmp/#{tmp_path}/container-tmp/#g")"\n'
    )
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    started = time.monotonic()
    with (
        StubServer(json_reply(500, LOAD_FAILED)) as stub,
        pytest.raises(EndpointNotReady) as caught,
    ):
        wait_until_ready(
            stub.base_url, "k", "m", timeout_s=3600, initial_delay_s=0.01, max_delay_s=0.05,
            docker_container="localai-test",
        )  # fmt: skip
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "the model does not load (5 times in a row): HTTP 500: could not load model" in message
    assert message.endswith(
        "The model's backend said, last:\nerror loading model: invalid magic characters"
    )
    assert len(stub.requests) == 5


def test_a_load_failure_that_clears_does_not_end_the_wait() -> None:
    replies = [json_reply(500, LOAD_FAILED)] * 4 + [json_reply(200, COMPLETION)]

    def respond(handler) -> None:
        replies.pop(0)(handler)

    with StubServer(respond) as stub:
        result = wait_until_ready(stub.base_url, "k", "m", timeout_s=60, initial_delay_s=0.01)
    assert result.attempts == 5
