"""scripts/deploy.sh run for real, with stand-ins for the pulumi, docker and pip CLIs.

The script is the README's first quick-start command; the stand-ins record how they
are called so the test can check the state backend, the passphrase, the stack
creation and the `pulumi up` call without a Pulumi CLI or a Docker engine.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RECORDER = """#!/usr/bin/env bash
printf '%s\\t%s\\t%s\\n' "$(basename "$0")" "$*" \\
  "backend=${PULUMI_BACKEND_URL:-} passfile=${PULUMI_CONFIG_PASSPHRASE_FILE:-} skip_update_check=${PULUMI_SKIP_UPDATE_CHECK:-}" >> "$CALLS"
case "$(basename "$0") $1" in
  "pulumi whoami") exit 1 ;;            # not logged in
  "docker info") exit "${DOCKER_INFO_EXIT:-0}" ;;
esac
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's deploy script, requirements and stacks, with a fake venv."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "deploy.sh", repo / "scripts" / "deploy.sh")
    shutil.copy2(ROOT / "requirements.txt", repo / "requirements.txt")
    shutil.copytree(ROOT / "stacks", repo / "stacks")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("pulumi", "docker"):
        write_exec(bin_dir / tool, RECORDER)
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    write_exec(venv_bin / "python", RECORDER)
    write_exec(venv_bin / "pip", RECORDER)
    return repo


def write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def deploy(
    repo: Path, *args: str, wrap: tuple[str, ...] = (), **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    home = repo.parent / "home"
    home.mkdir(exist_ok=True)
    calls = repo.parent / "calls.tsv"
    calls.write_text("")
    environment = {
        "PATH": f"{repo.parent / 'bin'}:{os.environ['PATH']}",
        "HOME": str(home),
        "CALLS": str(calls),
        **env,
    }
    result = subprocess.run(
        [*wrap, "bash", str(repo / "scripts" / "deploy.sh"), *args],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result, [line.split("\t") for line in calls.read_text().splitlines()]


def test_fresh_machine_gets_a_local_backend_a_passphrase_and_the_local_stack(project: Path) -> None:
    result, calls = deploy(project)
    assert result.returncode == 0, result.stderr
    home = project.parent / "home"
    passphrase = home / ".config" / "localai" / "pulumi-passphrase"
    assert passphrase.read_text().strip(), "a passphrase was generated"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    state = home / ".local" / "state" / "localai" / "pulumi-state"
    assert state.is_dir()
    commands = [(tool, args) for tool, args, _ in calls]
    assert ("pip", "install --quiet -r requirements.txt") in commands
    assert ("pulumi", "stack select --create local") in commands
    assert ("pulumi", "up --yes --stack local") in commands
    up_env = next(env for tool, args, env in calls if args.startswith("up "))
    assert f"backend=file://{state}" in up_env
    assert f"passfile={passphrase}" in up_env
    assert "export PULUMI_BACKEND_URL=" in result.stdout


def test_second_run_reuses_the_passphrase_and_skips_pip(project: Path) -> None:
    deploy(project)
    passphrase = project.parent / "home" / ".config" / "localai" / "pulumi-passphrase"
    first = passphrase.read_text()
    result, calls = deploy(project, "local", "--refresh")
    assert result.returncode == 0, result.stderr
    assert passphrase.read_text() == first
    assert not [c for c in calls if c[0] == "pip"]
    assert calls[-1][:2] == ["pulumi", "up --yes --stack local --refresh"]


def test_a_user_backend_is_left_alone(project: Path) -> None:
    result, calls = deploy(
        project, PULUMI_BACKEND_URL="s3://team-state", PULUMI_CONFIG_PASSPHRASE="x"
    )
    assert result.returncode == 0, result.stderr
    up_env = next(env for tool, args, env in calls if args.startswith("up "))
    assert "backend=s3://team-state passfile=" in up_env
    assert not (project.parent / "home" / ".config" / "localai").exists()


def test_unknown_stack_is_refused_with_the_known_ones(project: Path) -> None:
    result, calls = deploy(project, "staging")
    assert result.returncode == 1
    assert "no stacks/Pulumi.staging.yaml; the stacks are: dev gpu local" in result.stderr
    assert not [c for c in calls if c[0] == "pulumi" and c[1].startswith("up")]


def test_local_stack_needs_a_running_docker_daemon(project: Path) -> None:
    result, calls = deploy(project, DOCKER_INFO_EXIT="1")
    assert result.returncode == 1
    assert "the Docker daemon is not reachable" in result.stderr
    assert not [c for c in calls if c[0] == "pulumi" and c[1].startswith("up")]


def test_aws_stacks_do_not_need_docker(project: Path) -> None:
    result, calls = deploy(project, "dev", DOCKER_INFO_EXIT="1")
    assert result.returncode == 0, result.stderr
    assert calls[-1][:2] == ["pulumi", "up --yes --stack dev"]


def test_the_pulumi_cli_is_told_not_to_look_for_updates(project: Path) -> None:
    """Its version check is a request to the internet on every command; the local stack
    needs none (issue 20, part 4). A user's own setting is kept."""
    result, calls = deploy(project)
    assert result.returncode == 0, result.stderr
    pulumi_calls = [env for tool, _args, env in calls if tool == "pulumi"]
    assert pulumi_calls and all(env.endswith("skip_update_check=true") for env in pulumi_calls)
    _, calls = deploy(project, PULUMI_SKIP_UPDATE_CHECK="false")
    assert all(
        env.endswith("skip_update_check=false") for tool, _a, env in calls if tool == "pulumi"
    )


def test_a_second_deploy_of_the_local_stack_needs_no_network(project: Path) -> None:
    """Once the CLI, the virtualenv and the passphrase are there, the script itself asks
    nothing of the network: run in a network namespace of its own (no route)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux)")
    assert deploy(project)[0].returncode == 0
    result, calls = deploy(project, wrap=("unshare", "--net", "--"))
    if "unshare failed" in result.stderr:
        pytest.skip(f"no network namespaces here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    commands = [(tool, args) for tool, args, _ in calls]
    assert ("pulumi", "up --yes --stack local") in commands
    assert not [c for c in commands if c[0] == "pip"], "no install on the second run"
