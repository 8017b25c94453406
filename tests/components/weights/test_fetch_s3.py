"""The weights fetcher's S3 path (issue 20, part 3), run for real against S3 on 127.0.0.1
(moto's server over HTTPS, checking every SigV4 signature): credentials from IMDSv2 as an
EC2 host gets them, ranged parts fetched in parallel and appended in order, a resume after
the last complete part, a wrong hash, a wrong key, a missing object, and every new check of
the manifest and the environment."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from components.weights.manifest import FETCHER
from tests.support.s3_server import S3_HELPER, S3Server, aws_cli_path, imds_server

FILE = "tiny.Q4_K_M.gguf"
BODY = os.urandom(1_000_000)
SHA = hashlib.sha256(BODY).hexdigest()
PART = 100_000


@pytest.fixture
def models(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    return directory


@pytest.fixture
def bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A bucket of this test's own, holding FILE under weights/."""
    name = "w-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]
    with s3_server.setup():
        s3_server.client("s3").create_bucket(Bucket=name)
        s3_server.client("s3").put_object(Bucket=name, Key=f"weights/{FILE}", Body=BODY)
    return name


def write_manifest(tmp_path: Path, url: str, *, sha: str = SHA, size: int = len(BODY)) -> None:
    (tmp_path / "weights.tsv").write_text(f"{FILE}\t{sha}\t{size}\t{url}\n")


def fetch(
    tmp_path: Path, models: Path, s3: S3Server | None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": aws_cli_path(),
        "HOME": str(tmp_path),  # no ~/.aws of this machine's user
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "FETCH_RETRY_DELAY_S": "0",
        "FETCH_STALL_S": "5",
        "FETCH_MIN_FREE_BYTES": "0",
        "FETCH_ATTEMPTS": "2",
        "FETCH_S3_PART_BYTES": str(PART),
        "FETCH_S3_REGION": "us-east-1",
        **env,
    }
    if s3 is not None:
        environment |= {"FETCH_S3_ENDPOINT_URL": s3.endpoint_url, "AWS_CA_BUNDLE": s3.ca_bundle}
    return subprocess.run(
        ["bash", str(FETCHER), str(tmp_path / "weights.tsv"), str(models)],
        env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def ranges(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split("s3: ", 1)[1] for line in result.stderr.splitlines() if "s3: bytes" in line]


def staged_partial(models: Path, data: bytes) -> Path:
    path = models / ".localai" / "staging" / f"{FILE}.partial"
    path.parent.mkdir(parents=True, mode=0o700)
    path.parent.parent.chmod(0o700)
    path.write_bytes(data)
    return path


def test_role_credentials_from_imdsv2_fetch_the_file_in_parallel_parts(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str
) -> None:
    """The EC2 path: no key in the environment; the aws CLI asks IMDSv2 (token first) for
    the instance role's temporary credentials and signs with them (session token included);
    moto checks the signature."""
    with s3_server.setup():
        credentials = s3_server.role_credentials(bucket)
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}")
    with imds_server(credentials, tmp_path) as imds:
        result = fetch(
            tmp_path, models, s3_server,
            AWS_EC2_METADATA_SERVICE_ENDPOINT=imds, FETCH_S3_PARALLEL="4",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (models / FILE).read_bytes() == BODY
    url = f"s3://{bucket}/weights/{FILE}"
    assert ranges(result) == [
        f"bytes 0-399999 of {url} (4 parts)",
        f"bytes 400000-799999 of {url} (4 parts)",
        f"bytes 800000-999999 of {url} (2 parts)",
    ]
    imds_log = (tmp_path / "imds.log").read_text()
    assert "imds: PUT /latest/api/token" in imds_log
    assert f"imds: GET /latest/meta-data/iam/security-credentials/{credentials['role']}" in imds_log
    assert not list((models / ".localai" / "staging").iterdir()), "no part or partial left"


def test_an_access_key_in_the_environment_works_and_a_wrong_secret_is_refused(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str
) -> None:
    with s3_server.setup():
        key = s3_server.reader_key(bucket)
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}")
    wrong = fetch(tmp_path, models, s3_server, AWS_ACCESS_KEY_ID=key["key"],
                  AWS_SECRET_ACCESS_KEY=key["secret"][:-1] + "x")  # fmt: skip
    assert wrong.returncode == 1
    assert "SignatureDoesNotMatch" in last_line(wrong)
    assert "(after 2 attempts)" in last_line(wrong)
    assert not (models / FILE).exists()
    right = fetch(tmp_path, models, s3_server, AWS_ACCESS_KEY_ID=key["key"],
                  AWS_SECRET_ACCESS_KEY=key["secret"])  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert (models / FILE).read_bytes() == BODY


def test_a_key_for_another_bucket_is_denied(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str
) -> None:
    with s3_server.setup():
        key = s3_server.reader_key(bucket + "-other")
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}")
    result = fetch(tmp_path, models, s3_server, AWS_ACCESS_KEY_ID=key["key"],
                   AWS_SECRET_ACCESS_KEY=key["secret"])  # fmt: skip
    assert result.returncode == 1
    assert "AccessDenied" in last_line(result)
    assert not (models / FILE).exists()


@pytest.fixture
def reader(s3_server: S3Server, bucket: str) -> dict[str, str]:
    with s3_server.setup():
        key = s3_server.reader_key(bucket)
    return {"AWS_ACCESS_KEY_ID": key["key"], "AWS_SECRET_ACCESS_KEY": key["secret"]}


def test_a_partial_download_resumes_after_its_last_complete_part(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str, reader: dict[str, str]
) -> None:
    staged_partial(models, BODY[:350_000])
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}")
    result = fetch(tmp_path, models, s3_server, FETCH_S3_PARALLEL="2", **reader)
    assert result.returncode == 0, result.stderr
    assert "resuming at 350000 bytes" in result.stderr
    url = f"s3://{bucket}/weights/{FILE}"
    assert ranges(result)[0] == f"bytes 350000-549999 of {url} (2 parts)"
    assert ranges(result)[-1] == f"bytes 950000-999999 of {url} (1 parts)"
    assert (models / FILE).read_bytes() == BODY


def test_a_verified_file_is_not_asked_for_again(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str, reader: dict[str, str]
) -> None:
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}")
    assert fetch(tmp_path, models, s3_server, **reader).returncode == 0
    again = fetch(tmp_path, models, None)  # no endpoint, no credentials: nothing is asked
    assert again.returncode == 0, again.stderr
    assert f"{FILE}: present and verified" in again.stderr
    assert ranges(again) == []


def test_an_object_that_does_not_match_its_hash_is_never_served(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str, reader: dict[str, str]
) -> None:
    wrong_sha = hashlib.sha256(b"something else").hexdigest()
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}", sha=wrong_sha)
    result = fetch(tmp_path, models, s3_server, **reader)
    assert result.returncode == 1
    assert f"sha256 mismatch for {FILE}: expected {wrong_sha}, got {SHA} (twice" in last_line(
        result
    )
    assert not (models / FILE).exists()
    assert not (models / ".localai" / "staging" / f"{FILE}.partial").exists()


def test_a_missing_object_fails_with_s3s_reason(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str, reader: dict[str, str]
) -> None:
    write_manifest(tmp_path, f"s3://{bucket}/weights/not-there.gguf")
    result = fetch(tmp_path, models, s3_server, **reader)
    assert result.returncode == 1
    assert "NoSuchKey" in last_line(result)
    assert f"download of {FILE} failed" in last_line(result)


@pytest.mark.parametrize(
    ("url", "size", "message"),
    [
        ("s3://Bucket/weights/x.gguf", 10, "not an s3://BUCKET/KEY URL"),
        ("s3://bucket", 10, "not an s3://BUCKET/KEY URL"),
        ("s3://bucket/", 10, "not an s3://BUCKET/KEY URL"),
        ("s3://bucket//x.gguf", 10, "not an s3://BUCKET/KEY URL"),
        ("s3://b/x.gguf", 10, "not an s3://BUCKET/KEY URL"),
        ("s3://ab/x.gguf", 10, "not an s3://BUCKET/KEY URL"),  # S3 names have 3 to 63
        (f"s3://{'b' * 64}/x.gguf", 10, "not an s3://BUCKET/KEY URL"),
        ("s3://bucket/weights/x.gguf", 0, "an s3:// file needs its size in the manifest"),
    ],
)
def test_a_bad_s3_manifest_line_is_refused_before_any_request(
    tmp_path: Path, models: Path, url: str, size: int, message: str
) -> None:
    write_manifest(tmp_path, url, size=size)
    result = fetch(tmp_path, models, None)
    assert result.returncode == 1
    assert message in last_line(result)
    assert "s3: bytes" not in result.stderr


def test_without_an_aws_cli_an_s3_file_is_refused_clearly(tmp_path: Path, models: Path) -> None:
    write_manifest(tmp_path, f"s3://bucket-x/weights/{FILE}")
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "cat", "chmod", "mkdir", "stat", "flock", "rm", "tail", "sha256sum",
                 "cut", "df", "tr", "mv", "touch", "sleep", "grep", "sed", "head"):  # fmt: skip
        (bare / tool).symlink_to(subprocess.run(["sh", "-c", f"command -v {tool}"],
                                 capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    (bare / "s3_get").symlink_to(S3_HELPER)
    result = fetch(tmp_path, models, None, PATH=str(bare))
    assert result.returncode == 1
    assert last_line(result) == (
        f"localai-fetch: error: download of {FILE} failed: there is no aws CLI to read "
        "s3:// URLs (after 2 attempts)"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FETCH_S3_PARALLEL": "0"}, "FETCH_S3_PARALLEL must be 1 to 64: '0'"),
        ({"FETCH_S3_PARALLEL": "65"}, "FETCH_S3_PARALLEL must be 1 to 64: '65'"),
        ({"FETCH_S3_PARALLEL": "two"}, "s3_parallel must be a whole number: 'two'"),
        ({"FETCH_STALL_S": "1m"}, "stall_s must be a whole number: '1m'"),
        ({"FETCH_S3_PART_BYTES": "0"}, "FETCH_S3_PART_BYTES must be at least 1: '0'"),
        ({"FETCH_S3_PART_BYTES": "1e6"}, "s3_part must be a whole number: '1e6'"),
        (
            {"FETCH_S3_ENDPOINT_URL": "http://127.0.0.1:9"},
            "FETCH_S3_ENDPOINT_URL must be an https:// URL",
        ),
        ({"FETCH_S3_REGION": "us east 1"}, "FETCH_S3_REGION is not a region name: 'us east 1'"),
    ],
)
def test_bad_s3_settings_are_refused_before_any_request(
    tmp_path: Path, models: Path, env: dict[str, str], message: str
) -> None:
    write_manifest(tmp_path, f"s3://bucket-x/weights/{FILE}")
    result = fetch(tmp_path, models, None, **env)
    assert result.returncode == 1
    assert message in last_line(result)


def test_the_edges_of_the_s3_settings_are_accepted(
    tmp_path: Path, s3_server: S3Server, bucket: str, reader: dict[str, str]
) -> None:
    """1 and 64 parts at a time download the file; the checks refuse only past them."""
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}")
    for parallel, window in (("1", "(1 parts)"), ("64", "(10 parts)")):
        models = tmp_path / f"models-{parallel}"
        models.mkdir()
        result = fetch(tmp_path, models, s3_server, FETCH_S3_PARALLEL=parallel, **reader)
        assert result.returncode == 0, result.stderr
        assert (models / FILE).read_bytes() == BODY
        assert window in result.stderr


def test_an_object_shorter_than_the_manifest_says_is_refused(
    tmp_path: Path, models: Path, s3_server: S3Server, bucket: str, reader: dict[str, str]
) -> None:
    """S3 answers a range that runs past the object's end with the bytes it has: a part
    that came back short is an error, never appended (else the whole object, shorter than
    the manifest's size, would pass as the file)."""
    write_manifest(tmp_path, f"s3://{bucket}/weights/{FILE}", size=len(BODY) + 50_000)
    result = fetch(tmp_path, models, s3_server, FETCH_S3_PART_BYTES="300000", **reader)
    assert result.returncode == 1
    assert "s3 sent 100000 bytes for the range 900000-1049999" in last_line(result)
    assert not (models / FILE).exists()


def test_a_silent_endpoint_is_reported_as_a_stall(tmp_path: Path, models: Path) -> None:
    """An endpoint that accepts the connection and never answers: the aws CLI's read
    timeout (FETCH_STALL_S) ends each attempt, reported as a stall."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        write_manifest(tmp_path, f"s3://bucket-x/weights/{FILE}")
        result = fetch(
            tmp_path, models, None,
            FETCH_S3_ENDPOINT_URL=f"https://127.0.0.1:{port}", FETCH_STALL_S="1",
            FETCH_CONNECT_TIMEOUT_S="1",
            FETCH_ATTEMPTS="1", AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY="x",
            AWS_MAX_ATTEMPTS="1",
        )  # fmt: skip
    assert result.returncode == 1
    assert last_line(result) == (
        f"localai-fetch: error: download of {FILE} stalled (under 1 KiB/s for 1s, or no "
        "connection within 1s) (after 1 attempts)"
    )
