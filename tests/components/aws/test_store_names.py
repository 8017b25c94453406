"""components/aws/store_names.py: the names the program looks the stores up by and the
mirror scripts create them under (one function, two callers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from components.aws.store_names import (
    BUCKET_MAX_CHARS,
    bucket_name,
    main,
    mirror_tag,
    registry_host,
    repository_name,
)


def test_repository_names_are_lower_case_with_single_separators() -> None:
    assert repository_name("localai-dev") == "localai/localai-dev"
    assert repository_name("LocalAI_Prod..eu") == "localai/localai-prod-eu"
    assert repository_name("-a-") == "localai/a"
    with pytest.raises(ValueError, match="no letter or digit"):
        repository_name("__")


def test_bucket_names_carry_account_and_region() -> None:
    assert bucket_name("localai-dev", "123456789012", "eu-west-1") == (
        "localai-dev-123456789012-eu-west-1"
    )


def test_a_long_stack_name_is_cut_to_63_and_stays_distinct() -> None:
    one = bucket_name("p-" + "a" * 60, "123456789012", "ap-southeast-2")
    two = bucket_name("p-" + "a" * 59 + "b", "123456789012", "ap-southeast-2")
    assert len(one) == 63 == BUCKET_MAX_CHARS == len(two)
    assert one != two
    assert one.endswith("-123456789012-ap-southeast-2")
    fits = "p-" + "a" * (BUCKET_MAX_CHARS - len("-123456789012-us-east-1") - 2)
    assert bucket_name(fits, "123456789012", "us-east-1") == fits + "-123456789012-us-east-1"


@pytest.mark.parametrize(
    ("account", "region", "message"),
    [
        ("12345678901", "us-east-1", "12-digit"),
        ("1234567890123", "us-east-1", "12-digit"),
        ("123456789012", "US-EAST-1", "region"),
        ("123456789012", "us-east", "region"),
    ],
)
def test_bad_account_or_region_is_refused(account: str, region: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bucket_name("localai-dev", account, region)


def test_registry_and_tags() -> None:
    assert (
        registry_host("123456789012", "eu-west-1") == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    )
    assert (
        mirror_tag("localai/localai:v2.24.0-ffmpeg-core") == "localai-localai-v2.24.0-ffmpeg-core"
    )
    assert mirror_tag("ghcr.io/x/y@sha256:abc") == "ghcr.io-x-y-sha256-abc"
    long = mirror_tag("r/" + "x" * 200 + ":t")
    assert len(long) == 128 and long != mirror_tag("r/" + "x" * 200 + ":u")
    exactly = "x" * 128
    assert mirror_tag(exactly) == exactly, "a tag of 128 characters is kept whole"


def test_the_cli_prints_the_names_for_the_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--prefix", "localai-dev", "--account", "123456789012", "--region", "eu-west-1"]
    assert main([*args, "--image", "localai/localai:v2.24.0-ffmpeg-core"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "repository=localai/localai-dev",
        "bucket=localai-dev-123456789012-eu-west-1",
        "registry=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "tag=localai/localai:v2.24.0-ffmpeg-core localai-localai-v2.24.0-ffmpeg-core",
    ]
    assert main(["--prefix", "x", "--account", "1", "--region", "eu-west-1"]) == 2
    assert "store_names: error: '1' is not a 12-digit AWS account id" in capsys.readouterr().err


def test_the_module_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "components.aws.store_names", "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for phrase in (
        "Names of a sealed stack's own stores: its ECR repository and its S3 weights bucket.",
        "--prefix PREFIX <project>-<stack>",
        "--image IMAGE an upstream image",
    ):
        assert phrase in text


@pytest.mark.parametrize("missing", ["--prefix", "--account", "--region"])
def test_every_name_part_is_required(missing: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = {"--prefix": "localai-dev", "--account": "123456789012", "--region": "eu-west-1"}
    argv = [part for key, value in args.items() if key != missing for part in (key, value)]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_without_an_image_only_the_names_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--prefix", "p", "--account", "123456789012", "--region", "eu-west-1"]) == 0
    assert [line.split("=")[0] for line in capsys.readouterr().out.splitlines()] == [
        "repository",
        "bucket",
        "registry",
    ]
