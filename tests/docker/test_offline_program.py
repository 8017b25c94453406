"""The local stack's program with no network (issue 20, part 4): everything it does before
the engine creates resources (settings, the catalog, the memory plan from this machine's
CPUs and memory, the Docker daemon's answer over its unix socket) needs no route out. Run
in a network namespace of its own (``unshare --net``: a loopback that is down, no route),
the way ``__main__`` runs it (``build_from_stack_config`` with the stack file's config),
with the Pulumi mocks standing in for the engine and the providers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, socket, sys
import pulumi
from tests.support.pulumi_mocks import RecordingMocks, install_mocks, stack_config

try:
    socket.create_connection(("192.0.2.1", 443), timeout=3).close()
    sys.exit("this namespace reaches the network: the test proves nothing")
except OSError as exc:
    print(f"no route: {exc}", file=sys.stderr)

mocks = RecordingMocks()
install_mocks(mocks)
pulumi.runtime.set_all_config(stack_config("local"))  # the keys as the engine gives them
from components.program import build_from_stack_config

result = {}

@pulumi.runtime.test
def run():
    outputs = build_from_stack_config()
    names = sorted(outputs)
    return pulumi.Output.all(*[outputs[n] for n in names]).apply(
        lambda values: result.update(zip(names, values))
    )

run()
types = sorted({r.typ for r in mocks.resources})
from components.docker.daemon import query_daemon

daemon = query_daemon()  # what the program asked: the engine, over its unix socket
print(json.dumps({"base_url": result["OPENAI_BASE_URL"], "types": types,
                  "daemon_reachable": daemon.reachable, "daemon_cpus": daemon.ncpu}))
"""


def test_the_local_program_runs_with_no_network(docker_engine) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", SCRIPT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"no network namespaces here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no route:" in result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["daemon_reachable"] is True, "the Docker daemon answered inside the namespace"
    assert found["daemon_cpus"] == os.cpu_count()
    assert found["base_url"] == "http://127.0.0.1:8080/v1"
    assert "docker:index/container:Container" in found["types"]
    assert "docker:index/remoteImage:RemoteImage" in found["types"]
