"""scripts/mirror-image.sh (issue 20, part 2): the stack's images into its own ECR
repository, run against stand-ins for the aws CLI (ECR's answers, kept in a state file)
and docker (pull, tag, push printing the digest as docker does). Our script and our
Python run for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.aws.store_names import mirror_tag

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "mirror-image.sh"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
CPU = "localai/localai:v2.24.0-ffmpeg-core"
GPU = "localai/localai:v2.24.0-cublas-cuda12-core"

STUB_AWS = r"""
import fcntl, json, os, sys
argv = sys.argv[1:]
state_path = os.environ["STUB_STATE"]
lock = open(state_path + ".lock", "w")  # a pipe runs aws and docker at once
fcntl.flock(lock, fcntl.LOCK_EX)
state = json.load(open(state_path))
state["calls"].append(argv)
def opt(name):
    return argv[argv.index(name) + 1] if name in argv else None
def save():
    json.dump(state, open(state_path, "w"))
out, rc = "", 0
if argv[:2] == ["configure", "get"]:
    rc = 1
elif argv[:2] == ["sts", "get-caller-identity"]:
    out = "123456789012"
elif argv[:2] == ["ecr", "describe-repositories"]:
    repo = state["repos"].get(opt("--repository-names"))
    if repo is None:
        print("RepositoryNotFoundException", file=sys.stderr); rc = 254
    elif opt("--query") == "repositories[0].imageTagMutability":
        out = repo["mutability"]
elif argv[:2] == ["ecr", "create-repository"]:
    state["repos"][opt("--repository-name")] = {"mutability": opt("--image-tag-mutability"),
        "scan": opt("--image-scanning-configuration"),
        "encryption": opt("--encryption-configuration"), "images": {}}
elif argv[:2] == ["ecr", "get-login-password"]:
    out = "ecr-operator-token"
elif argv[:2] == ["ecr", "describe-images"]:
    tag = opt("--image-ids").removeprefix("imageTag=")
    digest = state["repos"][opt("--repository-name")]["images"].get(tag)
    if digest is None:
        print("ImageNotFoundException", file=sys.stderr); rc = 254
    else:
        out = digest
else:
    print(f"unexpected aws {argv}", file=sys.stderr); rc = 252
save()
if out:
    print(out)
sys.exit(rc)
"""

STUB_DOCKER = r"""
import fcntl, hashlib, json, os, sys
argv = sys.argv[1:]
state_path = os.environ["STUB_STATE"]
stdin = sys.stdin.read() if argv[0] == "login" else ""  # before the lock: aws writes it
lock = open(state_path + ".lock", "w")  # a pipe runs aws and docker at once
fcntl.flock(lock, fcntl.LOCK_EX)
state = json.load(open(state_path))
record = list(argv)
rc = 0
if argv[0] == "login":
    record.append("stdin=" + stdin.strip())
elif argv[0] == "pull":
    rc = 1 if argv[-1] in os.environ.get("STUB_PULL_FAIL", "") else 0
elif argv[0] == "push":
    ref = argv[-1]
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    digest = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
    stored = os.environ.get("STUB_STORED_DIGEST", digest)
    state["repos"][repo]["images"][tag] = stored
    print(f"The push refers to repository [{ref.rsplit(':', 1)[0]}]")
    print(f"{tag}: digest: {digest} size: 2412")
state["calls"].append(["docker", *record])
json.dump(state, open(state_path, "w"))
sys.exit(rc)
"""


def run(tmp_path: Path, stack: str, repos: dict | None = None, **env: str):
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name, body in (("aws", STUB_AWS), ("docker", STUB_DOCKER)):
        (stubs / name).write_text(f"#!{sys.executable}\n{body}")
        (stubs / name).chmod(0o755)
    state = tmp_path / "state.json"
    if repos is not None or not state.exists():
        state.write_text(json.dumps({"repos": repos or {}, "calls": []}))
    else:
        data = json.loads(state.read_text())
        state.write_text(json.dumps({**data, "calls": []}))
    result = subprocess.run(
        ["bash", str(SCRIPT), stack],
        env={"PATH": f"{stubs}:/usr/bin:/bin", "STUB_STATE": str(state), "AWS_REGION": "eu-west-1",
             "PYTHON": sys.executable, "HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result, json.loads(state.read_text())


def test_the_first_run_creates_the_repository_and_pushes_the_cpu_image(tmp_path: Path) -> None:
    result, state = run(tmp_path, "dev")
    assert result.returncode == 0, result.stderr
    repo = state["repos"]["localai/localai-dev"]
    assert (repo["mutability"], repo["scan"], repo["encryption"]) == (
        "IMMUTABLE",
        "scanOnPush=true",
        "encryptionType=AES256",
    )
    assert list(repo["images"]) == [mirror_tag(CPU)]
    docker = [c[1:] for c in state["calls"] if c[0] == "docker"]
    assert docker[0] == ["login", "--username", "AWS", "--password-stdin", REGISTRY,
                         "stdin=ecr-operator-token"]  # fmt: skip
    assert ["pull", "--quiet", CPU] in docker
    target = f"{REGISTRY}/localai/localai-dev:{mirror_tag(CPU)}"
    assert ["tag", CPU, target] in docker and ["push", target] in docker
    lines = result.stdout.splitlines()
    assert lines[0] == f"created {REGISTRY}/localai/localai-dev (immutable tags, scan on push)"
    assert lines[1].startswith(f"{CPU}: pushed ({REGISTRY}/localai/localai-dev@sha256:")


def test_a_gpu_stack_mirrors_both_images(tmp_path: Path) -> None:
    result, state = run(tmp_path, "gpu")
    assert result.returncode == 0, result.stderr
    assert sorted(state["repos"]["localai/localai-gpu"]["images"]) == sorted(
        [mirror_tag(CPU), mirror_tag(GPU)]
    )


def test_a_second_run_pushes_nothing(tmp_path: Path) -> None:
    run(tmp_path, "dev")
    result, state = run(tmp_path, "dev", repos=None)
    assert result.returncode == 0, result.stderr
    assert not [c for c in state["calls"] if c[:2] in (["docker", "push"], ["docker", "pull"])]
    assert not [c for c in state["calls"] if c[:2] == ["ecr", "create-repository"]]
    assert result.stdout.startswith(f"{CPU}: already there ({REGISTRY}/localai/localai-dev@sha256:")


def test_a_digest_that_differs_after_the_push_fails(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "dev", STUB_STORED_DIGEST="sha256:" + "0" * 64)
    assert result.returncode == 1
    assert f"holds sha256:{'0' * 64}, but sha256:" in result.stderr


def test_mutable_tags_are_refused(tmp_path: Path) -> None:
    repos = {"localai/localai-dev": {"mutability": "MUTABLE", "images": {}}}
    result, state = run(tmp_path, "dev", repos=repos)
    assert result.returncode == 1
    assert "has MUTABLE tags; the stack needs IMMUTABLE" in result.stderr
    assert not [c for c in state["calls"] if c[0] == "docker"]


def test_a_failed_pull_is_an_error(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "dev", STUB_PULL_FAIL=CPU)
    assert result.returncode == 1
    assert f"mirror-image: error: cannot pull {CPU}" in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "usage: scripts/mirror-image.sh STACK"), (["a b"], "is not a stack name"),
     (["nope"], "cannot read stacks/Pulumi.nope.yaml")],
)  # fmt: skip
def test_bad_arguments_are_refused(tmp_path: Path, argv: list[str], message: str) -> None:
    run(tmp_path, "dev")
    result = subprocess.run(
        ["bash", str(SCRIPT), *argv],
        env={"PATH": f"{tmp_path / 'stubs'}:/usr/bin:/bin", "STUB_STATE": str(tmp_path / "state.json"),
             "AWS_REGION": "eu-west-1", "PYTHON": sys.executable, "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr


def test_without_a_region_it_says_so(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "dev", AWS_REGION="")
    assert result.returncode == 1
    assert "no AWS region: set AWS_REGION" in result.stderr
