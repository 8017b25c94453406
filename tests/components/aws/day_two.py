"""Run the program twice, as two `pulumi up`s with different config, and compare.

Each run gets fresh cloud mocks, so a run sees only what it declares. What the engine
would do with a resource across the two runs follows from its URN and its inputs: a URN
only in the second run is created (and one only in the first deleted); the same URN
with the same inputs is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from tests.support.program_run import NO_GPU_DAEMON, ProgramResult, run_program
from tests.support.pulumi_mocks import RecordingMocks, Registration, install_mocks


@dataclass
class Deployment:
    mocks: RecordingMocks
    result: ProgramResult

    @property
    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.mocks.resources}

    def one(self, typ: str) -> Registration:
        return self.mocks.one(typ)


def deploy(config: Mapping[str, str], *, setup=None, **kwargs: Any) -> Deployment:
    """One `pulumi up` of ``config`` (``localai:`` keys without the prefix)."""
    mocks = RecordingMocks()
    if setup is not None:
        setup(mocks)
    install_mocks(mocks)
    try:
        result = run_program(config, daemon=kwargs.pop("daemon", NO_GPU_DAEMON), **kwargs)
    finally:
        pulumi.runtime.set_all_config({}, secret_keys=[])
    return Deployment(mocks, result)


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi's marker for a secret value
"""(pulumi.runtime.rpc ``_special_sig_key`` with ``_special_secret_sig``)."""


def reveal(value: Any) -> Any:
    """An input with Pulumi's secret wrappers removed (the test compares values)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return reveal(value["value"])
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def unchanged(before: Deployment, after: Deployment, typ: str) -> bool:
    """The resource of ``typ`` keeps its URN and every input: the engine leaves it alone."""
    old, new = before.one(typ), after.one(typ)
    return old.urn == new.urn and old.inputs == new.inputs


def touched(before: Deployment, after: Deployment) -> dict[str, str]:
    """Every resource the second run creates, deletes or changes, by ``type::name``:
    ``created``, ``deleted`` or ``changed`` (same URN, different inputs outside its
    ``ignore_changes``)."""

    def key(urn: str) -> str:
        chain, name = urn.rsplit("::", 1)
        return f"{chain.rsplit('$', 1)[-1]}::{name}"

    old, new = before.by_urn, after.by_urn
    result = {key(u): "created" for u in new.keys() - old.keys()}
    result |= {key(u): "deleted" for u in old.keys() - new.keys()}
    for urn in old.keys() & new.keys():
        ignored = set(new[urn].ignore_changes)  # the engine keeps the old values of these
        before_inputs = {k: v for k, v in old[urn].inputs.items() if k not in ignored}
        after_inputs = {k: v for k, v in new[urn].inputs.items() if k not in ignored}
        if reveal(before_inputs) != reveal(after_inputs):
            result[key(urn)] = "changed"
    return result
