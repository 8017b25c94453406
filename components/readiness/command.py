"""Run the readiness waiter during ``pulumi up`` (never during preview).

A ``command.local.Command`` runs ``python -m components.readiness`` on the machine
running Pulumi, with the API key in its environment (not on its command line). It
re-runs whenever one of ``triggers`` changes (a new container or instance), so
``pulumi up`` returns only when the default model answers a one-token completion,
or fails with what the endpoint last said.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components.paths import PROJECT_ROOT


def readiness_command_line(
    base_url: str,
    model: str,
    timeout_s: int,
    hint: str = "",
    extra_args: Sequence[str] = (),
) -> str:
    """The shell command the Command resource runs (the key comes from the env)."""
    parts = [
        sys.executable,
        "-m",
        "components.readiness",  # its __main__.py; see there
        "--base-url",
        base_url,
        "--model",
        model,
        "--timeout",
        str(timeout_s),
    ]
    parts += list(extra_args)
    if hint:
        parts += ["--hint", hint]
    return " ".join(shlex.quote(part) for part in parts)


def wait_for_endpoint(
    name: str,
    *,
    base_url: pulumi.Input[str],
    api_key: pulumi.Input[str],
    model: str,
    timeout_s: int,
    triggers: Sequence[pulumi.Input[object]],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    hint: str = "",
    extra_args: Sequence[str] = (),
) -> command.local.Command:
    """``hint`` is appended to the failure message: what the user should check;
    ``extra_args`` are more waiter flags (e.g. ``--check-other-key-refused``)."""
    create = pulumi.Output.from_input(base_url).apply(
        lambda url: readiness_command_line(url, model, timeout_s, hint, extra_args)
    )
    return command.local.Command(
        name,
        create=create,
        dir=str(PROJECT_ROOT),
        environment={"OPENAI_API_KEY": pulumi.Output.secret(api_key)},
        triggers=list(triggers),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
