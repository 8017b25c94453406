"""Wait until an OpenAI-compatible endpoint really answers a chat completion.

Used by ``pulumi up`` (from a ``command.local.Command``) for the Docker and the AWS
targets. Standard library only: it runs in a minimal venv and never imports pulumi.

Readiness means one tiny chat completion (``max_tokens: 1``) on the default model
returns HTTP 200 with a choice. LocalAI keeps its port closed while it downloads the
model weights, then answers ``/readyz`` before the model is loaded, so neither an open
port nor a health URL is enough.

Policy:

* Exponential backoff between attempts: ``initial_delay_s``, doubling, capped at
  ``max_delay_s``; the last sleep is cut so the deadline is honoured. Each request's own
  timeout is ``request_timeout_s`` but never beyond the deadline (at least 1 s), so the
  whole wait ends within about ``timeout_s + 1`` seconds.
* Retried (they fix themselves while the server starts): connection refused/reset,
  timeouts, DNS failures (a new DNS name takes time to resolve), HTTP 5xx (model
  loading), 404 and other 4xx (a proxy in front may answer before the server does).
* Fail fast: HTTP 401/403 means the key is wrong and waiting will not fix it. We give
  up after ``max_auth_failures`` (default 3, a few seconds) consecutive rejections
  rather than on the first one, because while an instance is being replaced the old
  one, configured with the old key, may still answer for a moment. During the first
  ``auth_grace_s`` seconds rejections are retried like any other answer: after a key
  rotation the host needs a moment to load the new key.
* ``docker_container``: while the endpoint does not answer, read that container's recent
  log: the weights fetcher's error ("localai-fetch: error: sha256 mismatch for X") ends the
  wait at once with that line, and its warnings (a stalled download) are logged, so a
  broken download shows in seconds instead of after the timeout.
* ``check_other_key_refused``: once ready, one more request with a different key must be
  rejected (401/403): the server enforces exactly the configured key, so an old (rotated
  or leaked) key no longer works.

CLI (the key comes only from the environment, never from argv, which ``ps`` shows)::

    OPENAI_API_KEY=... python -m components.readiness.waiter --base-url http://host:8080/v1 \
        --model phi-3.5-mini-instruct --timeout 1800

Progress lines go to stderr; exit 0 when ready, 1 with one line on stderr when not,
2 for usage errors (e.g. no OPENAI_API_KEY).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["EndpointNotReady", "ReadyResult", "backoff_delays", "main", "wait_until_ready"]

REFUSED = (
    "connection refused (the server is not listening yet: LocalAI keeps its port closed "
    "while it downloads model weights)"
)
_BODY_EXCERPT = 200


class EndpointNotReady(Exception):
    """The endpoint did not answer a chat completion in time (or rejected the key).

    ``str(exc)`` is one line naming the URL, the elapsed time and what was last seen.
    """

    def __init__(self, message: str, *, last_seen: str, attempts: int, elapsed_s: float):
        super().__init__(message)
        self.last_seen = last_seen
        self.attempts = attempts
        self.elapsed_s = elapsed_s


@dataclass(frozen=True)
class ReadyResult:
    attempts: int  # requests made, the successful one included
    elapsed_s: float  # from the call until the successful answer
    latency_s: float  # duration of the successful one-token request
    first_token: str  # text of that token (may be empty or whitespace)


@dataclass(frozen=True)
class _Observation:
    ok: bool
    seen: str  # plain-words description of what happened
    auth_rejected: bool = False
    first_token: str = ""


def backoff_delays(initial_delay_s: float, max_delay_s: float) -> Iterator[float]:
    """Yield ``initial, 2*initial, 4*initial, ...`` capped at ``max_delay_s``, forever."""
    if initial_delay_s <= 0 or max_delay_s <= 0:
        raise ValueError("initial_delay_s and max_delay_s must be positive")

    def delays() -> Iterator[float]:
        delay = min(initial_delay_s, max_delay_s)
        while True:
            yield delay
            delay = min(delay * 2, max_delay_s)

    return delays()


def wait_until_ready(
    base_url: str,
    api_key: str,
    model: str,
    *,
    timeout_s: float = 1800.0,
    initial_delay_s: float = 1.0,
    max_delay_s: float = 15.0,
    request_timeout_s: float = 120.0,
    log: Callable[[str], None] | None = None,
    max_auth_failures: int = 3,
    max_load_failures: int = 5,
    auth_grace_s: float = 0.0,
    check_other_key_refused: bool = False,
    docker_container: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReadyResult:
    """Poll ``POST {base_url}/chat/completions`` (one token) until it answers 200.

    Returns a :class:`ReadyResult`; raises :class:`EndpointNotReady` when ``timeout_s``
    passes, or after ``max_auth_failures`` consecutive HTTP 401/403, and ``ValueError``
    for nonsensical arguments. ``log`` receives progress lines (one per change of
    state, plus one a minute while nothing changes). ``clock`` and ``sleep`` are
    injectable for tests.
    """
    if timeout_s < 0 or request_timeout_s <= 0 or max_auth_failures < 1:
        raise ValueError("timeout_s must be >= 0, request_timeout_s > 0 and max_auth_failures >= 1")
    delays = backoff_delays(initial_delay_s, max_delay_s)  # validates the delays
    url = base_url.rstrip("/") + "/chat/completions"
    log = log or (lambda _line: None)
    start = clock()
    deadline = start + timeout_s
    attempts = 0
    auth_failures = 0
    load_failures = 0
    logged: tuple[str, float] | None = None  # (what, when) of the last progress line
    while True:
        attempts += 1
        per_request = min(request_timeout_s, max(deadline - clock(), 1.0))
        sent = clock()
        obs = _probe(url, api_key, model, per_request)
        now = clock()
        elapsed = now - start
        if obs.ok:
            log(f"ready: {url} answered after {_secs(elapsed)} ({_plural(attempts, 'attempt')})")
            if check_other_key_refused:
                _require_other_key_refused(url, api_key, model, per_request, elapsed, attempts)
                log("a different API key is refused")
            return ReadyResult(attempts, elapsed, now - sent, obs.first_token)

        if docker_container is not None:
            fetch_error, fetch_note = _fetch_log(docker_container)
            if fetch_error is not None:
                raise EndpointNotReady(
                    f"{url} cannot start: the container {docker_container} reports "
                    f"{fetch_error!r} (Docker restarts it; fix the cause and run pulumi up)",
                    last_seen=fetch_error,
                    attempts=attempts,
                    elapsed_s=elapsed,
                )
            if fetch_note is not None and (logged is None or fetch_note not in logged[0]):
                log(f"{docker_container}: {fetch_note}")
                logged = (f"{obs.seen} {fetch_note}", now)
        # LocalAI answers "could not load model" when the backend died loading it (out of
        # memory, a bad file, an instruction the CPU lacks): that does not pass by waiting.
        load_failures = load_failures + 1 if LOAD_FAILURE in obs.seen else 0
        if load_failures >= max_load_failures:
            cause = _backend_cause(docker_container) if docker_container is not None else ""
            raise EndpointNotReady(
                f"{url}: the model does not load ({load_failures} times in a row): {obs.seen}"
                + (f"\nThe model's backend said, last:\n{cause}" if cause else ""),
                last_seen=obs.seen,
                attempts=attempts,
                elapsed_s=elapsed,
            )
        in_grace = elapsed < auth_grace_s
        auth_failures = auth_failures + 1 if obs.auth_rejected and not in_grace else 0
        if auth_failures >= max_auth_failures:
            raise EndpointNotReady(
                f"{url} rejected the API key {auth_failures} times in a row after "
                f"{_secs(elapsed)}: {obs.seen}. Check that OPENAI_API_KEY is the key the "
                "server was started with (pulumi stack output --show-secrets OPENAI_API_KEY).",
                last_seen=obs.seen,
                attempts=attempts,
                elapsed_s=elapsed,
            )
        remaining = deadline - now
        if remaining <= 0:
            raise EndpointNotReady(
                f"{url} not ready after {_secs(elapsed)} ({_plural(attempts, 'attempt')}); "
                f"last seen: {obs.seen}",
                last_seen=obs.seen,
                attempts=attempts,
                elapsed_s=elapsed,
            )
        pause = min(next(delays), remaining)
        # One line per change of state, and a reminder every minute while it persists.
        if logged is None or logged[0] != obs.seen or now - logged[1] >= 60:
            log(f"attempt {attempts} at {_secs(elapsed)}: {obs.seen}; retrying in {_secs(pause)}")
            logged = (obs.seen, now)
        sleep(pause)


FETCH_PREFIXES = ("localai-fetch:", "localai-sync-configs:")
LOAD_FAILURE = "could not load model"
"""LocalAI v2.24.0's error when a backend failed to load the model
(pkg/model/initializers.go)."""
BACKEND_STDERR_SCRIPT = (
    "d=$(ls -td /tmp/go-processmanager*/ 2>/dev/null | head -n 1); "
    '[ -n "$d" ] && tail -n 20 "${d}stderr"'
)
"""The newest backend's stderr in the container: LocalAI v2.24.0 logs it only at debug
level, but keeps it in its process manager's state dir (pkg/model/process.go)."""


def _backend_cause(container: str) -> str:
    try:
        done = subprocess.run(
            ["docker", "exec", container, "sh", "-c", BACKEND_STDERR_SCRIPT],
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _fetch_log(container: str) -> tuple[str | None, str | None]:
    """(the fetcher's error, its latest line) from the container's last log lines, when
    the latest fetcher line is still about a problem; (None, None) without docker."""
    try:
        done = subprocess.run(
            ["docker", "logs", "--tail", "40", container],
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    lines = [
        line.strip()
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip().startswith(FETCH_PREFIXES)
    ]
    if not lines:
        return None, None
    latest = lines[-1]
    if ": error: " in latest:
        return latest, None
    if "stalled" in latest or "retrying" in latest or "downloading" in latest:
        return None, latest
    return None, None


def _require_other_key_refused(
    url: str, api_key: str, model: str, timeout_s: float, elapsed: float, attempts: int
) -> None:
    other = _probe(url, api_key + "-not-this-key", model, timeout_s)
    if other.auth_rejected:
        return
    raise EndpointNotReady(
        f"{url} answers with the API key, but also accepted a different key ({other.seen}): "
        "the server does not enforce exactly the configured key (an old or leaked key may "
        "still work)",
        last_seen=other.seen,
        attempts=attempts + 1,
        elapsed_s=elapsed,
    )


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _probe(url: str, api_key: str, model: str, timeout_s: float) -> _Observation:
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say OK."}],
            "max_tokens": 1,
            "temperature": 0,
            "stream": False,
        }
    ).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
            raw = response.read()
    except urllib.error.HTTPError as err:
        return _http_error(err.code, _read_body(err))
    except urllib.error.URLError as err:
        return _Observation(False, _describe_network_error(err.reason, url, timeout_s, True))
    except (OSError, http.client.HTTPException) as err:
        return _Observation(False, _describe_network_error(err, url, timeout_s, False))

    try:
        payload = json.loads(raw)
        choice = payload["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return _Observation(
            False, f"HTTP {status} but the body is not a chat completion: {_excerpt(raw)}"
        )
    message = choice.get("message") or {}
    token = message.get("content") or choice.get("text") or ""
    return _Observation(True, f"HTTP {status}", first_token=str(token))


def _http_error(code: int, raw: bytes) -> _Observation:
    detail = _excerpt(raw)
    if code == 401:
        return _Observation(False, "HTTP 401 (API key rejected)", auth_rejected=True)
    if code == 403:
        return _Observation(False, f"HTTP 403 (forbidden: {detail})", auth_rejected=True)
    if code == 404:
        hint = "not found: check that the base URL ends in /v1 and the model name"
        return _Observation(False, f"HTTP 404 ({hint}): {detail}")
    return _Observation(False, f"HTTP {code}: {detail}")


def _describe_network_error(
    reason: object, url: str, timeout_s: float, before_request_sent: bool
) -> str:
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, ConnectionRefusedError):
        return REFUSED
    if isinstance(reason, socket.gaierror):
        return f"DNS lookup failed for {host} (the name does not resolve yet: {reason.strerror})"
    if isinstance(reason, TimeoutError):
        if before_request_sent:
            return (
                f"timed out connecting to {host} after {_secs(timeout_s)} (nothing answers: "
                "is the VM running and is your IP in allowedCidrs / the security group?)"
            )
        return (
            f"timed out after {_secs(timeout_s)} waiting for the answer (the server accepted "
            "the request but is still loading the model, or is too slow)"
        )
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
        return "connection closed by the server before it answered (it is probably starting)"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error talking to {host}: {reason}"
    if isinstance(reason, OSError) and reason.errno is not None:
        return f"network error talking to {host}: {reason.strerror or reason}"
    return f"network error talking to {host}: {reason}"


def _read_body(err: urllib.error.HTTPError) -> bytes:
    try:
        return err.read()
    except (OSError, http.client.HTTPException):
        return b""


def _excerpt(raw: bytes) -> str:
    """The error message out of an OpenAI/FastAPI/LocalAI JSON body, else the text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
        elif payload.get("detail"):
            text = str(payload["detail"])
        elif payload.get("message"):
            text = str(payload["message"])
    text = " ".join(text.split())
    if len(text) > _BODY_EXCERPT:
        text = text[: _BODY_EXCERPT - 3] + "..."
    return text or "(empty body)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.readiness.waiter",
        description="Wait until an OpenAI-compatible endpoint answers a one-token chat "
        "completion. The API key is read from the OPENAI_API_KEY environment variable.",
    )
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL"))
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds (default 1800)")
    parser.add_argument("--initial-delay", type=float, default=1.0)
    parser.add_argument("--max-delay", type=float, default=15.0)
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--hint", default="", help="what to check, appended on failure")
    parser.add_argument(
        "--auth-grace",
        type=float,
        default=0.0,
        help="seconds during which 401/403 are retried (a host loading a rotated key)",
    )
    parser.add_argument(
        "--docker-container",
        default=None,
        help="read this container's log for the weights fetcher's errors while waiting",
    )
    parser.add_argument(
        "--check-other-key-refused",
        action="store_true",
        help="once ready, require that a different key is rejected",
    )
    args = parser.parse_args(argv)
    api_key = os.environ.get("OPENAI_API_KEY")
    missing = [
        label
        for label, value in (
            ("--base-url (or OPENAI_BASE_URL)", args.base_url),
            ("--model (or OPENAI_MODEL)", args.model),
            ("the OPENAI_API_KEY environment variable", api_key),
        )
        if not value
    ]
    if missing:
        parser.error("missing " + ", ".join(missing))

    def log(line: str) -> None:
        print(f"readiness: {line}", file=sys.stderr, flush=True)

    try:
        result = wait_until_ready(
            args.base_url,
            api_key or "",
            args.model,
            timeout_s=args.timeout,
            initial_delay_s=args.initial_delay,
            max_delay_s=args.max_delay,
            request_timeout_s=args.request_timeout,
            log=log,
            auth_grace_s=args.auth_grace,
            check_other_key_refused=args.check_other_key_refused,
            docker_container=args.docker_container,
        )
    except EndpointNotReady as err:
        hint = f". {args.hint}" if args.hint else ""
        print(f"error: {err}{hint}", file=sys.stderr, flush=True)
        return 1
    except ValueError as err:
        parser.error(str(err))
    log(f"model {args.model} answered in {result.latency_s:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
