"""Mirror a stack's weights into an S3 bucket, from a machine that can reach the models'
sources (issue 20, part 3: the operator's side).

Each file of the stack's manifest is downloaded with the package's own fetcher
(``localai-fetch-weights.sh``: resumed, verified against its SHA-256) into a local cache,
then uploaded to ``s3://BUCKET/weights/<sha256>/<filename>`` (content-addressed: a new
revision is a new key, never an overwrite) with a SHA-256 checksum on every part, which S3
checks on arrival, and the file's SHA-256 as metadata. An object already there with that
SHA-256 recorded and the file's size is left alone, so a second run uploads nothing.
:func:`s3_manifest` gives the manifest a host reads from the bucket with the fetcher's
``s3://`` path, which verifies the SHA-256 again.

Run it as ``python -m components.weights.mirror --stack STACK``: the bucket is the stack's
own (``components/aws/store_names.py``: ``<project>-<stack>-<account>-<region>``), created
when missing (SSE-S3, public access blocked, versioning off), which ``localai:egress none``
reads; ``--bucket BUCKET`` names another one, which must exist.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.weights.manifest import FETCHER

WEIGHTS_PREFIX = "weights"
DEFAULT_CACHE = Path.home() / ".cache" / "localai" / "mirror"


@dataclass(frozen=True)
class ManifestLine:
    filename: str
    sha256: str
    size: int
    url: str


def parse_manifest(text: str) -> list[ManifestLine]:
    """The fetcher's manifest lines (``#`` comments and blank lines skipped)."""
    lines = []
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        filename, sha256, size, url = raw.split("\t")
        lines.append(ManifestLine(filename, sha256, int(size), url))
    return lines


def object_key(line: ManifestLine) -> str:
    return f"{WEIGHTS_PREFIX}/{line.sha256}/{line.filename}"


def s3_manifest(text: str, bucket: str, sizes: dict[str, int] | None = None) -> str:
    """``text`` with every URL pointing at the mirrored object in ``bucket`` (and each
    unknown size taken from ``sizes``, filename -> bytes: the fetcher's s3:// path needs
    it). Raises ValueError naming a file whose size is still unknown."""
    out = ["# localai weights manifest (mirrored to S3): filename, sha256, size, url"]
    for line in parse_manifest(text):
        size = line.size or (sizes or {}).get(line.filename, 0)
        if size <= 0:
            raise ValueError(f"{line.filename}: its size is unknown; mirror it first")
        out.append(f"{line.filename}\t{line.sha256}\t{size}\ts3://{bucket}/{object_key(line)}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Mirrored:
    filename: str
    key: str
    size: int
    uploaded: bool
    """False: the bucket already had it (same SHA-256 and size)."""


def fetch_into(manifest_text: str, cache: Path, *, env: dict[str, str] | None = None) -> None:
    """Every file of the manifest present and verified in ``cache``, by the fetcher."""
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    manifest = cache / ".mirror-manifest.tsv"
    manifest.write_text(manifest_text)
    result = subprocess.run(
        ["bash", str(FETCHER), str(manifest), str(cache)],
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise MirrorError(f"the fetcher could not get every file: {last[0]}")


class MirrorError(RuntimeError):
    pass


def _present(s3: Any, bucket: str, key: str, line: ManifestLine, size: int) -> bool:
    """The bucket holds this file: the size and the SHA-256 the mirror recorded."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return (
        head.get("ContentLength") == size and head.get("Metadata", {}).get("sha256") == line.sha256
    )


def upload(
    s3: Any, bucket: str, lines: list[ManifestLine], cache: Path, *, transfer: Any = None
) -> Iterator[Mirrored]:
    """Each verified file in ``cache`` to its key in ``bucket``, unless already there. The
    upload is boto3's managed transfer (multipart above 8 MiB) with a SHA-256 checksum on
    every part, which S3 checks on arrival; the file's own SHA-256 goes in the metadata,
    and every host verifies it again after its download."""
    for line in lines:
        path = cache / line.filename
        size = path.stat().st_size
        key = object_key(line)
        if _present(s3, bucket, key, line, size):
            yield Mirrored(line.filename, key, size, uploaded=False)
            continue
        s3.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"Metadata": {"sha256": line.sha256}, "ChecksumAlgorithm": "SHA256"},
            Config=transfer,
        )
        if not _present(s3, bucket, key, line, size):
            raise MirrorError(f"{line.filename}: s3://{bucket}/{key} does not match after upload")
        yield Mirrored(line.filename, key, size, uploaded=True)


def stack_images(stack: str) -> list[str]:
    """The images the stack's host pulls: the CPU image, and the CUDA image when its
    instance type has a GPU it may use (``scripts/mirror-image.sh`` mirrors these)."""
    from components.models.catalog import load_catalog
    from components.settings import load_settings
    from components.sizing.instance_types import lookup

    settings = load_settings(_stack_values(stack), catalog=load_catalog())
    gpu = lookup(settings.aws_instance_type).gpu_count > 0 and settings.accelerator != "cpu"
    return [settings.cpu_image, *([settings.cuda_image] if gpu else [])]


def _stack_values(stack: str) -> dict[str, Any]:
    import yaml

    path = Path(__file__).resolve().parents[2] / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise MirrorError(f"no {path}")
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return {
        key.removeprefix("localai:"): value
        for key, value in config.items()
        # secrets ({secure: ...}) stay out: the models and images never depend on them
        if key.startswith("localai:") and not (isinstance(value, dict) and "secure" in value)
    }


def stack_manifest(stack: str) -> str:
    """The manifest the stack's hosts use, from its stack file (stacks/Pulumi.STACK.yaml)."""
    from components.models.catalog import load_catalog
    from components.models.facts import load_facts_for
    from components.settings import load_settings
    from components.weights.manifest import weights_manifest

    raw = _stack_values(stack)
    catalog = load_catalog()
    settings = load_settings(raw, catalog=catalog)
    models = [catalog[name] for name in settings.served_models]
    return weights_manifest(models, dict(load_facts_for(settings.served_models)))


PROJECT = "localai"
"""Pulumi.yaml's ``name``: a stack's resource prefix is ``<project>-<stack>``."""


def stack_bucket(stack: str, *, sts: Any, region: str | None) -> str:
    """The stack's own weights bucket: the name the program looks it up by."""
    from components.aws.store_names import bucket_name

    if not region:
        raise MirrorError("no AWS region: set AWS_REGION (the stack's localai region)")
    account = sts.get_caller_identity()["Account"]
    try:
        return bucket_name(f"{PROJECT}-{stack}", account, region)
    except ValueError as exc:
        raise MirrorError(str(exc)) from None


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create ``bucket`` unless it exists: encrypted at rest (SSE-S3), every kind of public
    access blocked, versioning left off (a key is a SHA-256, never overwritten). True when
    it was created."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    location = {} if region == "us-east-1" else {"LocationConstraint": region}
    s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {}))
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    return True


def mirror(
    manifest_text: str,
    bucket: str,
    *,
    s3: Any,
    cache: Path,
    fetch: Callable[[str, Path], None] = fetch_into,
    transfer: Any = None,
) -> list[Mirrored]:
    """Fetch every file of ``manifest_text`` into ``cache`` (verified), then upload each
    one the bucket lacks."""
    fetch(manifest_text, cache)
    return list(upload(s3, bucket, parse_manifest(manifest_text), cache, transfer=transfer))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the stack whose models to mirror")
    parser.add_argument("--bucket", help="another bucket than the stack's own (it must exist)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="local download cache")
    parser.add_argument("--endpoint-url", help="another S3 endpoint (tests)")
    args = parser.parse_args(argv)
    import boto3

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url)
    bucket = args.bucket
    try:
        if bucket is None:
            region = boto3.session.Session().region_name
            sts = boto3.client("sts", endpoint_url=args.endpoint_url)
            bucket = stack_bucket(args.stack, sts=sts, region=region)
            if ensure_bucket(s3, bucket, region):
                print(f"created s3://{bucket} (SSE-S3, public access blocked)")
        done = mirror(stack_manifest(args.stack), bucket, s3=s3, cache=args.cache / args.stack)
    except MirrorError as exc:
        print(f"mirror-weights: error: {exc}", file=sys.stderr)
        return 1
    for item in done:
        verb = "uploaded" if item.uploaded else "already there"
        print(f"{item.filename}: {verb} (s3://{bucket}/{item.key}, {item.size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
