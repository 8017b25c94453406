"""components/weights/mirror.py (issue 20, part 3, the operator's side) for real: the
package's fetcher downloads from an HTTPS server on 127.0.0.1 into the mirror's cache, boto3
uploads to S3 on 127.0.0.1 (moto's server, checking every signature), and the host's side,
the fetcher's s3:// path, reads the mirrored object back and verifies it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from components.models.catalog import load_catalog
from components.models.facts import load_facts_for
from components.settings import load_settings
from components.weights import mirror
from components.weights.manifest import FETCHER, weights_manifest
from tests.support.pulumi_mocks import stack_config
from tests.support.s3_server import S3Server, aws_cli_path

FILE = "tiny.Q4_K_M.gguf"
BODY = os.urandom(700_000)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def store(s3_server: S3Server, request: pytest.FixtureRequest):
    """A bucket of this test's own, an operator's client that may write it and a host's
    key that may only read it."""
    bucket = "m-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]
    with s3_server.setup():
        s3_server.client("s3").create_bucket(Bucket=bucket)
        writer = s3_server.writer_key(bucket)
        reader = s3_server.reader_key(bucket)
    return bucket, s3_server.client("s3", **writer), reader


@pytest.fixture
def source(file_server, tls_certificate):
    """The models' source: FILE (and BIG) over HTTPS; the fetcher's env to trust it."""
    file_server.files[f"/{FILE}"] = BODY
    env = {"CURL_CA_BUNDLE": str(tls_certificate[0]), "FETCH_RETRY_DELAY_S": "0",
           "FETCH_MIN_FREE_BYTES": "0", "FETCH_ATTEMPTS": "2"}  # fmt: skip
    return file_server, env


def manifest_for(base_url: str, *files: tuple[str, bytes], known_size: bool = True) -> str:
    lines = ["# test manifest"]
    for name, body in files:
        size = len(body) if known_size else 0
        lines.append(f"{name}\t{hashlib.sha256(body).hexdigest()}\t{size}\t{base_url}/{name}")
    return "\n".join(lines) + "\n"


def run_mirror(manifest: str, bucket: str, client, cache: Path, env: dict[str, str], **kw):
    return mirror.mirror(
        manifest, bucket, s3=client, cache=cache,
        fetch=lambda text, where: mirror.fetch_into(text, where, env=env), **kw,
    )  # fmt: skip


def host_fetch(tmp_path: Path, manifest: str, s3: S3Server, reader: dict[str, str]) -> Path:
    models = tmp_path / "host-models"
    models.mkdir()
    (tmp_path / "host.tsv").write_text(manifest)
    result = subprocess.run(
        ["bash", str(FETCHER), str(tmp_path / "host.tsv"), str(models)],
        env={"PATH": aws_cli_path(), "HOME": str(tmp_path), "AWS_CA_BUNDLE": s3.ca_bundle,
             "AWS_CONFIG_FILE": str(tmp_path / "none"), "FETCH_S3_ENDPOINT_URL": s3.endpoint_url,
             "FETCH_S3_REGION": "us-east-1", "FETCH_MIN_FREE_BYTES": "0",
             "AWS_ACCESS_KEY_ID": reader["key"], "AWS_SECRET_ACCESS_KEY": reader["secret"]},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return models


def test_mirrored_weights_reach_a_host_through_s3(tmp_path, s3_server, store, source) -> None:
    bucket, client, reader = store
    server, env = source
    manifest = manifest_for(server.base_url, (FILE, BODY))
    done = run_mirror(manifest, bucket, client, tmp_path / "cache", env)
    key = f"weights/{SHA}/{FILE}"
    assert done == [mirror.Mirrored(FILE, key, len(BODY), uploaded=True)]
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(BODY)
    assert head["Metadata"] == {"sha256": SHA}
    host_manifest = mirror.s3_manifest(manifest, bucket)
    assert f"{FILE}\t{SHA}\t{len(BODY)}\ts3://{bucket}/{key}\n" in host_manifest
    models = host_fetch(tmp_path, host_manifest, s3_server, reader)
    assert (models / FILE).read_bytes() == BODY


def test_a_second_mirror_downloads_and_uploads_nothing(tmp_path, store, source) -> None:
    bucket, client, _ = store
    server, env = source
    manifest = manifest_for(server.base_url, (FILE, BODY))
    run_mirror(manifest, bucket, client, tmp_path / "cache", env)
    first = client.head_object(Bucket=bucket, Key=f"weights/{SHA}/{FILE}")["LastModified"]
    server.requests.clear()
    again = run_mirror(manifest, bucket, client, tmp_path / "cache", env)
    assert [m.uploaded for m in again] == [False]
    assert server.requests == [], "the cache's verified file was not downloaded again"
    assert client.head_object(Bucket=bucket, Key=f"weights/{SHA}/{FILE}")["LastModified"] == first


def test_an_object_that_differs_from_the_file_is_uploaded_again(tmp_path, store, source) -> None:
    """Wrong size or no recorded SHA-256 (an upload cut short, another tool's object)."""
    bucket, client, _ = store
    server, env = source
    manifest = manifest_for(server.base_url, (FILE, BODY))
    key = f"weights/{SHA}/{FILE}"
    client.put_object(Bucket=bucket, Key=key, Body=BODY[:1000], Metadata={"sha256": SHA})
    assert [m.uploaded for m in run_mirror(manifest, bucket, client, tmp_path / "c", env)] == [True]
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(BODY)
    client.put_object(Bucket=bucket, Key=key, Body=BODY)  # right bytes, nothing recorded
    assert [m.uploaded for m in run_mirror(manifest, bucket, client, tmp_path / "c", env)] == [True]
    assert client.head_object(Bucket=bucket, Key=key)["Metadata"] == {"sha256": SHA}


def test_a_large_file_goes_up_in_checked_parts(tmp_path, s3_server, store, source) -> None:
    bucket, client, reader = store
    server, env = source
    big = os.urandom(12 * 1024 * 1024)
    server.files["/big.gguf"] = big
    manifest = manifest_for(server.base_url, ("big.gguf", big))
    parts = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    done = run_mirror(manifest, bucket, client, tmp_path / "cache", env, transfer=parts)
    assert [m.uploaded for m in done] == [True]
    key = done[0].key
    etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith("-3"), f"a multipart object's ETag counts its parts: {etag}"
    models = host_fetch(tmp_path, mirror.s3_manifest(manifest, bucket), s3_server, reader)
    assert (
        hashlib.sha256((models / "big.gguf").read_bytes()).hexdigest()
        == hashlib.sha256(big).hexdigest()
    )


def test_a_file_that_fails_its_hash_is_never_uploaded(tmp_path, store, source) -> None:
    bucket, client, _ = store
    server, env = source
    wrong = f"{FILE}\t{'ab' * 32}\t{len(BODY)}\t{server.base_url}/{FILE}\n"
    with pytest.raises(mirror.MirrorError, match=rf"sha256 mismatch for {FILE}"):
        run_mirror(wrong, bucket, client, tmp_path / "cache", env)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_the_host_manifest_needs_every_size() -> None:
    manifest = manifest_for(
        "https://example.test", (FILE, BODY), ("a.mmproj", b"x"), known_size=False
    )
    with pytest.raises(ValueError, match=rf"^{FILE}: its size is unknown; mirror it first$"):
        mirror.s3_manifest(manifest, "bucket-x")
    filled = mirror.s3_manifest(manifest, "bucket-x", sizes={FILE: 7, "a.mmproj": 1})
    assert filled.splitlines()[1:] == [
        f"{FILE}\t{SHA}\t7\ts3://bucket-x/weights/{SHA}/{FILE}",
        f"a.mmproj\t{hashlib.sha256(b'x').hexdigest()}\t1\ts3://bucket-x/weights/"
        f"{hashlib.sha256(b'x').hexdigest()}/a.mmproj",
    ]


@pytest.mark.parametrize("stack", ["local", "dev", "gpu", "prod"])
def test_the_stack_manifest_is_the_one_its_hosts_use(stack: str) -> None:
    config = {
        k.removeprefix("localai:"): v
        for k, v in stack_config(stack).items()
        if k.startswith("localai:")
    }
    catalog = load_catalog()
    settings = load_settings(config, catalog=catalog)
    models = [catalog[name] for name in settings.served_models]
    expected = weights_manifest(models, dict(load_facts_for(settings.served_models)))
    assert mirror.stack_manifest(stack) == expected
    assert len(mirror.parse_manifest(expected)) >= 2


def test_a_stack_file_with_secrets_gives_the_manifest_without_them() -> None:
    """``pulumi config set --secret`` writes ``{secure: ...}``: never a model setting, and
    never read (a secret is no plain value the settings could take)."""
    stacks = Path(mirror.__file__).resolve().parents[2] / "stacks"
    path = stacks / f"Pulumi.mirror-secret-{os.getpid()}.yaml"
    plain = (stacks / "Pulumi.dev.yaml").read_text()
    path.write_text(plain + "  localai:hfToken:\n    secure: v1:AAAABBBBCCCC\n")
    try:
        assert mirror.stack_manifest(path.stem.removeprefix("Pulumi.")) == (
            mirror.stack_manifest("dev")
        )
    finally:
        path.unlink()


def test_an_unknown_stack_is_an_error(capsys) -> None:
    assert mirror.main(["--stack", "nope", "--bucket", "b-x"]) == 1
    assert "mirror-weights: error: no " in capsys.readouterr().err


# -- issue 22: what the mirror decides, each pinned -----------------------------------------


def test_the_values_are_immutable() -> None:
    import dataclasses

    line = mirror.ManifestLine(FILE, SHA, 1, "https://x")
    done = mirror.Mirrored(FILE, "k", 1, uploaded=True)
    for value, field in ((line, "size"), (done, "uploaded")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 2)


def test_the_manifest_skips_comments_and_blank_lines_only() -> None:
    text = f"# header\n\n{FILE}\t{SHA}\t7\thttps://x/{FILE}\n#another\n"
    assert mirror.parse_manifest(text) == [mirror.ManifestLine(FILE, SHA, 7, f"https://x/{FILE}")]
    assert mirror.s3_manifest(text, "bucket-x").splitlines() == [
        "# localai weights manifest (mirrored to S3): filename, sha256, size, url",
        f"{FILE}\t{SHA}\t7\ts3://bucket-x/weights/{SHA}/{FILE}",
    ]
    assert mirror.DEFAULT_CACHE.parts[-3:] == (".cache", "localai", "mirror")


@pytest.fixture
def fetcher_script(tmp_path, monkeypatch):
    """Make ``mirror.fetch_into`` run a bash script of the test's own instead of the fetcher."""
    count = 0

    def use(body: str) -> None:
        nonlocal count
        count += 1
        script = tmp_path / f"fetcher-{count}.sh"
        script.write_text(body)
        monkeypatch.setattr(mirror, "FETCHER", script)

    return use


def test_the_cache_is_the_operators_own_and_a_silent_failure_still_says_so(
    tmp_path, fetcher_script
) -> None:
    fetcher_script("exit 3\n")
    cache = tmp_path / "cache" / "dev"
    with pytest.raises(mirror.MirrorError) as caught:
        mirror.fetch_into("x\n", cache)
    assert str(caught.value) == "the fetcher could not get every file: (no output)"
    assert (cache.stat().st_mode & 0o777, (cache / ".mirror-manifest.tsv").read_text()) == (
        0o700, "x\n",
    )  # fmt: skip
    fetcher_script("echo first >&2; echo 'last words' >&2; exit 1\n")
    with pytest.raises(
        mirror.MirrorError, match=r"^the fetcher could not get every file: last words$"
    ):
        mirror.fetch_into("x\n", cache)


class HeadOnly:
    """An S3 API stand-in that answers HEAD with one error code, or with ``head``."""

    def __init__(self, code: str | None = None, head: dict | None = None) -> None:
        self.code, self.head, self.uploads = code, head or {}, []

    def head_object(self, **_: object) -> dict:
        from botocore.exceptions import ClientError

        if self.code is not None:
            raise ClientError({"Error": {"Code": self.code}}, "HeadObject")
        return self.head

    def upload_file(self, *args: object, **kwargs: object) -> None:
        self.uploads.append((args, kwargs))


@pytest.mark.parametrize("code", ["404", "NoSuchKey", "NotFound"])
def test_each_not_found_answer_means_absent(code: str) -> None:
    line = mirror.ManifestLine(FILE, SHA, 1, "https://x")
    assert mirror._present(HeadOnly(code), "b", "k", line, 1) is False


def test_any_other_error_is_raised_not_taken_for_absent() -> None:
    from botocore.exceptions import ClientError

    line = mirror.ManifestLine(FILE, SHA, 1, "https://x")
    with pytest.raises(ClientError):
        mirror._present(HeadOnly("403"), "b", "k", line, 1)


def test_an_upload_that_does_not_match_afterwards_is_an_error(tmp_path) -> None:
    (tmp_path / FILE).write_bytes(b"12345")
    line = mirror.ManifestLine(FILE, SHA, 5, "https://x")
    s3 = HeadOnly(head={"ContentLength": 5, "Metadata": {"sha256": "0" * 64}})
    with pytest.raises(mirror.MirrorError) as caught:
        list(mirror.upload(s3, "bucket-x", [line], tmp_path))
    assert str(caught.value) == (
        f"{FILE}: s3://bucket-x/weights/{SHA}/{FILE} does not match after upload"
    )
    ((args, kwargs),) = s3.uploads
    assert args == (str(tmp_path / FILE), "bucket-x", f"weights/{SHA}/{FILE}")
    assert kwargs == {
        "ExtraArgs": {"Metadata": {"sha256": SHA}, "ChecksumAlgorithm": "SHA256"},
        "Config": None,
    }


def test_main_mirrors_the_stack_and_says_what_it_did(tmp_path, monkeypatch, capsys) -> None:
    seen = {}

    def fake_mirror(text, bucket, *, s3, cache):
        seen.update(text=text, bucket=bucket, cache=cache, endpoint=s3.meta.endpoint_url)
        return [mirror.Mirrored("a.gguf", "weights/x/a.gguf", 3, uploaded=True),
                mirror.Mirrored("b.gguf", "weights/y/b.gguf", 4, uploaded=False)]  # fmt: skip

    monkeypatch.setattr(mirror, "mirror", fake_mirror)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    argv = ["--stack", "dev", "--bucket", "bucket-x", "--cache", str(tmp_path),
            "--endpoint-url", "https://127.0.0.1:9"]  # fmt: skip
    assert mirror.main(argv) == 0
    assert seen == {"text": mirror.stack_manifest("dev"), "bucket": "bucket-x",
                    "cache": tmp_path / "dev", "endpoint": "https://127.0.0.1:9"}  # fmt: skip
    assert capsys.readouterr().out.splitlines() == [
        "a.gguf: uploaded (s3://bucket-x/weights/x/a.gguf, 3 bytes)",
        "b.gguf: already there (s3://bucket-x/weights/y/b.gguf, 4 bytes)",
    ]


def test_main_needs_the_stack_and_documents_each_option(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        mirror.main(["--bucket", "b"])
    assert caught.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        mirror.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in (
        "Mirror a stack's weights into an S3 bucket, from a machine that can reach the "
        "models' sources (issue 20, part 3: the operator's side).",
        "--stack STACK the stack whose models to mirror",
        "--bucket BUCKET another bucket than the stack's own (it must exist)",
        "--cache CACHE local download cache",
        "--endpoint-url ENDPOINT_URL another S3 endpoint (tests)",
    ):
        assert phrase in text


def test_main_caches_under_the_default_directory_per_stack(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(
        mirror, "mirror", lambda text, bucket, *, s3, cache: seen.update(c=cache) or []
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert mirror.main(["--stack", "gpu", "--bucket", "b-x"]) == 0
    assert seen["c"] == mirror.DEFAULT_CACHE / "gpu"


# -- issue 22, the mirror's own mutation run ------------------------------------------------


def test_a_negative_size_is_no_known_size() -> None:
    negative = f"{FILE}\t{SHA}\t-5\thttps://example.test/{FILE}\n"
    with pytest.raises(ValueError, match=rf"^{FILE}: its size is unknown; mirror it first$"):
        mirror.s3_manifest(negative, "bucket-x")


def test_a_fetcher_killed_by_a_signal_is_a_failure_and_the_last_line_is_what_it_says(
    tmp_path, fetcher_script
) -> None:
    fetcher_script("kill -9 $$\n")
    with pytest.raises(mirror.MirrorError, match=r": \(no output\)$"):
        mirror.fetch_into("x\n", tmp_path / "cache")
    fetcher_script("printf 'one\\ntwo\\nthree\\n' >&2; exit 2\n")
    with pytest.raises(mirror.MirrorError, match=r"^the fetcher could not get every file: three$"):
        mirror.fetch_into("x\n", tmp_path / "cache")


def test_an_object_larger_than_the_file_is_not_taken_for_it() -> None:
    line = mirror.ManifestLine(FILE, SHA, 5, "https://x")
    bigger = HeadOnly(head={"ContentLength": 6, "Metadata": {"sha256": SHA}})
    assert mirror._present(bigger, "b", "k", line, 5) is False
    same = HeadOnly(head={"ContentLength": 5, "Metadata": {"sha256": SHA}})
    assert mirror._present(same, "b", "k", line, 5) is True


def test_a_file_already_there_does_not_stop_the_next_ones_upload(tmp_path) -> None:
    class FirstThere(HeadOnly):
        def head_object(self, **kw: object) -> dict:
            key = str(kw["Key"])
            there = key.endswith("/a.gguf") or any(a[2] == key for a, _ in self.uploads)
            return {"ContentLength": 1, "Metadata": {"sha256": key.split("/")[1]}} if there else {}

    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"x")
    lines = [mirror.ManifestLine(n, s * 64, 1, "https://x") for n, s in (("a.gguf", "a"),
                                                                         ("b.gguf", "b"))]  # fmt: skip
    s3 = FirstThere()
    done = list(mirror.upload(s3, "bucket-x", lines, tmp_path))
    assert [(m.filename, m.uploaded) for m in done] == [("a.gguf", False), ("b.gguf", True)]


def test_the_options_are_keyword_only() -> None:
    import inspect

    for function, names in ((mirror.fetch_into, ["env"]), (mirror.upload, ["transfer"]),
                            (mirror.mirror, ["s3", "cache", "fetch", "transfer"])):  # fmt: skip
        parameters = inspect.signature(function).parameters
        assert [n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY] == names


def test_the_module_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "components.weights.mirror", "--help"],
        capture_output=True, text=True, timeout=60, cwd=Path(mirror.__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0 and "--bucket" in result.stdout, result.stderr


# -- the stack's own bucket (egress none: the name the program looks it up by) -----------


def test_without_a_bucket_the_stacks_own_is_created_once_and_used(
    tmp_path, s3_server, monkeypatch, capsys
) -> None:
    from components.aws.store_names import bucket_name

    own = bucket_name("localai-dev", "123456789012", "eu-west-1")
    with s3_server.setup():
        writer = s3_server.writer_key(own)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", writer["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", writer["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CA_BUNDLE", s3_server.ca_bundle)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    seen = []
    monkeypatch.setattr(
        mirror, "mirror", lambda text, bucket, *, s3, cache: seen.append(bucket) or []
    )
    argv = ["--stack", "dev", "--cache", str(tmp_path), "--endpoint-url", s3_server.endpoint_url]
    assert mirror.main(argv) == 0
    assert capsys.readouterr().out == f"created s3://{own} (SSE-S3, public access blocked)\n"
    assert mirror.main(argv) == 0
    assert capsys.readouterr().out == ""
    assert seen == [own, own]
    with s3_server.setup():
        admin = s3_server.client("s3")
        block = admin.get_public_access_block(Bucket=own)["PublicAccessBlockConfiguration"]
        rules = admin.get_bucket_encryption(Bucket=own)["ServerSideEncryptionConfiguration"]
        location = admin.get_bucket_location(Bucket=own)["LocationConstraint"]
        versioning = admin.get_bucket_versioning(Bucket=own).get("Status")
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert (location, versioning) == ("eu-west-1", None)


def test_a_bucket_in_us_east_1_has_no_location_constraint(s3_server) -> None:
    with s3_server.setup():
        admin = s3_server.client("s3")
        assert mirror.ensure_bucket(admin, "localai-x-123456789012-us-east-1", "us-east-1")
        assert admin.get_bucket_location(Bucket="localai-x-123456789012-us-east-1")[
            "LocationConstraint"
        ] in (None, "us-east-1")


def test_an_error_other_than_not_found_is_raised_not_taken_for_absent() -> None:
    from botocore.exceptions import ClientError

    class Denied:
        def head_bucket(self, **_):
            raise ClientError({"Error": {"Code": "403"}}, "HeadBucket")

    with pytest.raises(ClientError):
        mirror.ensure_bucket(Denied(), "b-x", "eu-west-1")


def test_without_a_region_the_mirror_says_so() -> None:
    with pytest.raises(mirror.MirrorError, match="no AWS region: set AWS_REGION"):
        mirror.stack_bucket("dev", sts=None, region=None)
    sts = type("Sts", (), {"get_caller_identity": lambda self: {"Account": "12"}})()
    with pytest.raises(mirror.MirrorError, match="not a 12-digit AWS account id"):
        mirror.stack_bucket("dev", sts=sts, region="eu-west-1")
