"""A sealed host's boot (``egress none``, issue 20): the rendered files and ``localai-run``
against stand-ins for docker and aws, as tests/components/aws/bootstrap/test_scripts.py
runs it. The images come from the stack's ECR registry, logged into with the role's token
(on stdin, never in argv); no aws CLI is installed from the internet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.aws.bootstrap.cloud_init import (
    S3_GET_PATH,
    render_user_data,
)
from tests.components.aws.bootstrap.cloud_init_support import TINY_MANIFEST, make_spec
from tests.components.aws.bootstrap.test_scripts import Host, write_stub

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
CPU = f"{REGISTRY}/localai/dev@sha256:{'c' * 64}"
GPU = f"{REGISTRY}/localai/dev@sha256:{'9' * 64}"
SEALED = {"ecr_registry": REGISTRY, "cpu_image": CPU, "gpu_image": GPU, "install_docker": False}
S3_MANIFEST = TINY_MANIFEST.replace("https://", "s3://bucket-name/weights/x/")
STUB_SNAP = r"""
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": "snap", "argv": sys.argv[1:]}) + "\n")
"""


def parse(document: str) -> dict:
    assert document.startswith("#cloud-config\n")
    return yaml.safe_load(document)


def files(spec) -> dict[str, str]:
    return {f["path"]: f["content"] for f in parse(render_user_data(spec))["write_files"]}


def conf(spec) -> dict[str, str]:
    text = files(spec)["/etc/localai/localai.conf"]
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# -- the rendered document -------------------------------------------------------------


def test_the_registry_is_in_the_conf_of_a_sealed_host_only() -> None:
    assert conf(make_spec(**SEALED))["LOCALAI_ECR_REGISTRY"] == REGISTRY
    assert "LOCALAI_ECR_REGISTRY" not in conf(make_spec())


def test_s3_get_is_installed_only_for_an_s3_manifest() -> None:
    sealed = files(make_spec(**SEALED, weights_manifest=S3_MANIFEST))
    assert sealed[S3_GET_PATH].startswith("#!/usr/bin/env bash")
    assert "the weights fetcher's s3:// path" not in sealed[S3_GET_PATH], "comments compacted"
    assert S3_GET_PATH not in files(make_spec(**SEALED))
    assert S3_GET_PATH == "/usr/local/sbin/s3_get"


def test_a_sealed_host_installs_no_package() -> None:
    document = parse(render_user_data(make_spec(**SEALED)))
    assert "packages" not in document and "package_update" not in document


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ecr_registry": "registry.example.com"}, "is not a private ECR registry name"),
        ({"ecr_registry": f"{REGISTRY}/x"}, "is not a private ECR registry name"),
        ({"ecr_registry": "12345678901.dkr.ecr.eu-west-1.amazonaws.com"}, "not a private ECR"),
        ({"install_docker": True}, "cannot install packages"),
        ({"cpu_image": "localai/localai:v2.24.0-ffmpeg-core"}, "cpu_image .* is not in"),
        ({"gpu_image": f"{REGISTRY}.evil.example/x@sha256:1"}, "gpu_image .* is not in"),
    ],
)
def test_a_bad_sealed_spec_is_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_user_data(make_spec(**{**SEALED, **overrides}))


def test_a_china_registry_is_accepted() -> None:
    registry = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
    spec = make_spec(
        ecr_registry=registry, cpu_image=f"{registry}/a@sha256:1", gpu_image=f"{registry}/a@x",
        install_docker=False,
    )  # fmt: skip
    assert conf(spec)["LOCALAI_ECR_REGISTRY"] == registry


# -- localai-run against the stand-ins -------------------------------------------------


def test_the_sealed_host_logs_into_its_registry_before_the_pull(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False, **SEALED})
    result = host.run()
    assert result.returncode == 0, result.stderr
    calls = [(c["cmd"], c["argv"][:2]) for c in host.calls() if c["cmd"] in ("aws", "docker")]
    login = calls.index(("docker", ["login", "--username"]))
    token = calls.index(("aws", ["ecr", "get-login-password"]))
    pull = next(i for i, c in enumerate(calls) if c[0] == "docker" and c[1][0] == "pull")
    assert token < pull and login < pull
    (record,) = [c for c in host.calls("docker") if c["argv"][0] == "login"]
    assert record["argv"] == ["login", "--username", "AWS", "--password-stdin", REGISTRY]
    assert record["stdin"].strip() == "ecr-token-for-the-role"
    (region,) = [c for c in host.calls("aws") if c["argv"][:2] == ["ecr", "get-login-password"]]
    assert region["argv"][2:] == ["--region", "eu-west-1"]
    assert host.container_run()["argv"][-1] == CPU


def test_a_failed_login_is_retried_then_fails_the_start(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False, **SEALED})
    result = host.run(STUB_AWS_ECR_FAIL="1", LOCALAI_PULL_ATTEMPTS="2")
    assert result.returncode != 0
    assert f"cannot pull {CPU}" in result.stderr
    assert "(attempt 1/2)" in result.stderr
    assert not [c for c in host.calls("docker") if c["argv"][0] in ("pull", "run")]


def test_a_present_image_needs_no_login(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False, **SEALED})
    result = host.run(STUB_DOCKER_IMAGES=CPU)
    assert result.returncode == 0, result.stderr
    assert not [c for c in host.calls("docker") if c["argv"][0] in ("login", "pull")]


def test_an_open_host_never_logs_in(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": False})
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert not [c for c in host.calls("docker") if c["argv"][0] == "login"]
    assert not [c for c in host.calls("aws") if c["argv"][0] == "ecr"]


def test_the_gpu_image_comes_through_the_registry_too(tmp_path: Path) -> None:
    host = Host(tmp_path, {"gpu": True, **SEALED})
    result = host.run(STUB_NVIDIA_SMI="ok")
    assert result.returncode == 0, result.stderr
    pulls = [c["argv"][-1] for c in host.calls("docker") if c["argv"][0] == "pull"]
    assert pulls == [GPU]
    assert len([c for c in host.calls("docker") if c["argv"][0] == "login"]) == 1


@pytest.mark.parametrize("sealed", [True, False])
def test_without_an_aws_cli_a_sealed_host_stops_and_an_open_one_installs_it(
    tmp_path: Path, sealed: bool
) -> None:
    host = Host(tmp_path, {"gpu": False, **(SEALED if sealed else {})})
    (host.stubs / "aws").unlink()
    write_stub(host.stubs, "snap", STUB_SNAP)
    result = host.run()
    assert result.returncode != 0  # the snap stand-in installs nothing
    snaps = host.calls("snap")
    if sealed:
        assert "no aws CLI on this AMI, and a host with egress none cannot install one" in (
            result.stderr
        )
        assert snaps == []
    else:
        assert ["install", "aws-cli", "--classic"] in [c["argv"] for c in snaps]
