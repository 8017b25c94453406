"""Run the whole program under the Pulumi mocks and hand back its resolved outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.docker.daemon import DaemonInfo
from components.models.catalog import load_catalog
from components.program import Environment, build
from components.settings import load_settings
from components.sizing.resources import HostResources

NO_GPU_DAEMON = DaemonInfo(
    reachable=True, ncpu=8, mem_total_bytes=16 * 1024**3, runtimes=frozenset({"runc"})
)
NVIDIA_DAEMON = DaemonInfo(
    reachable=True,
    ncpu=8,
    mem_total_bytes=32 * 1024**3,
    runtimes=frozenset({"runc", "nvidia"}),
)


def NO_GPU_MACHINE() -> HostResources:
    """The machine running Pulumi in tests: 8 CPUs, 16 GiB, no GPU (not this machine's)."""
    return HostResources.local(8, 8, 16 * 1024, arch="x86_64", cpu_isa="avx2")


@dataclass
class ProgramResult:
    outputs: dict[str, Any]
    secret_outputs: set[str]


def run_program(
    config: Mapping[str, str],
    *,
    secret_keys: tuple[str, ...] = (),
    daemon: DaemonInfo = NO_GPU_DAEMON,
    stack: str = "test",
    check: Callable[[ProgramResult], None] | None = None,
    local_host: Callable[[], HostResources] | None = None,
) -> ProgramResult:
    """Validate ``config`` (``localai:`` keys without the prefix), build, resolve outputs."""
    catalog = load_catalog()
    settings = load_settings(config, catalog=catalog, secret_keys=secret_keys)
    result = ProgramResult({}, set())

    @pulumi.runtime.test
    def _run() -> pulumi.Output[Any]:
        outputs = build(
            settings,
            Environment(
                project="localai",
                stack=stack,
                daemon_query=lambda: daemon,
                local_host=local_host or NO_GPU_MACHINE,
            ),
            catalog=catalog,
        )
        names = sorted(outputs)
        secret_flags = [
            pulumi.Output.from_input(outputs[n]).is_secret()
            if isinstance(outputs[n], pulumi.Output)
            else False
            for n in names
        ]

        def _store(args: list[Any]) -> None:
            values, flags = args[: len(names)], args[len(names) :]
            result.outputs.update(zip(names, values, strict=True))
            result.secret_outputs.update(n for n, f in zip(names, flags, strict=True) if f)
            if check is not None:
                check(result)

        return pulumi.Output.all(*[outputs[n] for n in names], *secret_flags).apply(_store)

    _run()
    return result


def localai_keys(config: Mapping[str, str]) -> dict[str, str]:
    prefix = "localai:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
