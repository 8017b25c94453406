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


def rollout_command_line(group: str, region: str, timeout_s: int, log_group: str) -> str:
    parts = [
        sys.executable,
        "-m",
        "components.readiness.rollout",
        "--group",
        group,
        "--region",
        region,
        "--timeout",
        str(timeout_s),
        "--log-group",
        log_group,
    ]
    return " ".join(shlex.quote(part) for part in parts)


def wait_for_rollout(
    name: str,
    *,
    group: str,
    region: pulumi.Input[str],
    timeout_s: int,
    log_group: pulumi.Input[str],
    triggers: Sequence[pulumi.Input[object]],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> command.local.Command:
    """Wait for the instance refresh a launch-template change started (re-run whenever a
    trigger, the template's version, changes); fail with why new hosts were abandoned."""
    create = pulumi.Output.all(region, log_group).apply(
        lambda v: rollout_command_line(group, v[0], timeout_s, v[1])
    )
    return command.local.Command(
        name,
        create=create,
        dir=str(PROJECT_ROOT),
        triggers=list(triggers),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
