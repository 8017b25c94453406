"""Stream a chat answer from an OpenAI-compatible endpoint with the standard OpenAI SDK.

The same code talks to the stack's LocalAI endpoint or to the real OpenAI API; only
environment variables decide which:

    OPENAI_BASE_URL   endpoint ending in /v1 (unset: the SDK's default, api.openai.com)
    OPENAI_API_KEY    the key (the stack's key, or your OpenAI key)
    OPENAI_MODEL      model name (default: gpt-4o-mini)
    OPENAI_TIMEOUT    seconds to wait for a connection and between streamed chunks
                      (default: 120; the first request may load the model)
    OPENAI_MAX_RETRIES  retries on connection errors, timeouts, 429 and 5xx (default: 2)

Usage: python chat.py Why is the sky blue?

Exit codes: 0 ok, 2 usage, 3 configuration (key unset, bad OPENAI_TIMEOUT),
4 API key rejected, 5 endpoint unreachable, 6 timeout, 7 model not found,
8 other API error, 9 empty answer. Errors are one line on stderr, never a traceback.

An empty answer is an error: LocalAI (v2.24.0) answers a streamed request it cannot serve
(an unknown model name, a model that fails to load) with HTTP 200 and a stream without
content. The example then asks /v1/models whether the model exists (exit 7 if not) and
otherwise reports the empty answer (exit 9). Apps that stream should do the same.
"""

from __future__ import annotations

import os
import socket
import sys

import openai

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_S = 120.0

EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_AUTH = 4
EXIT_UNREACHABLE = 5
EXIT_TIMEOUT = 6
EXIT_MODEL = 7
EXIT_API = 8
EXIT_EMPTY = 9

KEY_HINT = "Check OPENAI_API_KEY (pulumi stack output --show-secrets OPENAI_API_KEY)."
URL_HINT = "Check OPENAI_BASE_URL (pulumi stack output OPENAI_BASE_URL) and that the stack is up."
MODEL_HINT = "Check OPENAI_MODEL (pulumi stack output OPENAI_MODEL)."


class ChatError(Exception):
    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code


def main(argv: list[str]) -> int:
    prompt = " ".join(argv).strip()
    if not prompt:
        print("usage: python chat.py PROMPT...", file=sys.stderr)
        return EXIT_USAGE
    try:
        client, model = _client_from_env()
        _stream_answer(client, model, prompt)
    except ChatError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _client_from_env() -> tuple[openai.OpenAI, str]:
    if not os.environ.get("OPENAI_BASE_URL"):
        # An empty value would be taken literally by the SDK; empty means "unset" here.
        os.environ.pop("OPENAI_BASE_URL", None)
    timeout = _number_env("OPENAI_TIMEOUT", DEFAULT_TIMEOUT_S, "a number of seconds")
    retries = int(_number_env("OPENAI_MAX_RETRIES", 2, "a whole number"))
    try:
        # base_url and api_key come from OPENAI_BASE_URL / OPENAI_API_KEY (the SDK reads them)
        client = openai.OpenAI(timeout=timeout, max_retries=retries)
    except openai.OpenAIError:
        raise ChatError(EXIT_CONFIG, f"OPENAI_API_KEY is not set. {KEY_HINT}") from None
    return client, os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL


def _number_env(name: str, default: float, what: str) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ChatError(EXIT_CONFIG, f"{name}={raw!r} is not {what} >= 0.")
    return value


def _stream_answer(client: openai.OpenAI, model: str, prompt: str) -> None:
    endpoint = str(client.base_url).rstrip("/")
    wrote = False
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                sys.stdout.write(chunk.choices[0].delta.content)
                sys.stdout.flush()
                wrote = True
    except openai.APIError as err:
        if wrote:  # keep the partial answer on its own line
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise _explain(err, endpoint, model, float(client.timeout)) from None
    if not wrote:
        raise _empty_answer(client, endpoint, model)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _empty_answer(client: openai.OpenAI, endpoint: str, model: str) -> ChatError:
    """A stream that ended without content: an unknown model, or one that did not run."""
    at = f"the endpoint at {endpoint}"
    try:
        served = sorted(m.id for m in client.models.list())
    except openai.APIError:
        served = None
    if served is not None and model not in served:
        listed = ", ".join(served) or "none"
        return ChatError(
            EXIT_MODEL,
            f"{at} does not serve model {model!r} (an empty answer; it serves: {listed}). "
            f"{MODEL_HINT}",
        )
    return ChatError(
        EXIT_EMPTY,
        f"{at} sent an empty answer for model {model!r}: the model failed to load or to "
        "generate (out of memory, a damaged weights file). Check the server's log.",
    )


def _explain(err: openai.APIError, endpoint: str, model: str, timeout: float) -> ChatError:
    """One clear line (and an exit code) for what failed and what to check."""
    at = f"the endpoint at {endpoint}"
    if isinstance(err, openai.APITimeoutError):
        return ChatError(
            EXIT_TIMEOUT,
            f"{at} did not answer within {timeout:g} s (timeout). The model may still be "
            "loading or the machine is overloaded; retry, or raise OPENAI_TIMEOUT.",
        )
    if isinstance(err, openai.APIConnectionError):
        return ChatError(EXIT_UNREACHABLE, f"cannot connect to {at} ({_cause(err)}). {URL_HINT}")
    if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
        return ChatError(EXIT_AUTH, f"{at} rejected the API key ({err.status_code}). {KEY_HINT}")
    detail = _detail(err)
    status = getattr(err, "status_code", None)
    if _is_model_error(err, status, detail):
        return ChatError(
            EXIT_MODEL,
            f"{at} does not serve model {model!r} ({status}: {detail}). {MODEL_HINT}",
        )
    if status == 404:
        return ChatError(
            EXIT_API,
            f"{at} has no chat completions API (404: {detail}). "
            "Check that OPENAI_BASE_URL ends in /v1.",
        )
    where = f"{status}: " if status else ""
    return ChatError(EXIT_API, f"{at} returned an error ({where}{detail}).")


def _is_model_error(err: openai.APIError, status: int | None, detail: str) -> bool:
    # OpenAI (and vLLM): 404 with code "model_not_found". LocalAI: 500 "could not load
    # model ...". llama.cpp servers ignore the name and answer with their only model.
    if err.code == "model_not_found":
        return True
    lowered = detail.lower()
    return (
        status in (400, 404, 500)
        and "model" in lowered
        and (
            "not found" in lowered
            or "does not exist" in lowered
            or "could not load" in lowered
            or "unknown" in lowered
        )
    )


def _detail(err: openai.APIError) -> str:
    body = err.body
    text = None
    if isinstance(body, dict):
        text = body.get("message") or body.get("detail") or body.get("error")
    text = " ".join(str(text or err.message).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _cause(err: BaseException) -> str:
    """The innermost cause, e.g. 'Connection refused' or 'Name or service not known'."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    if isinstance(err, socket.gaierror):
        return f"the host name does not resolve: {err.strerror}"
    text = str(err) or type(err).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        sys.exit(0)
