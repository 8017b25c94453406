"""The bootstrap bundle: a fleet host's (or a sealed host's) files as one tar.gz in a bucket.

EC2 allows 16 KiB of (gzipped) user data; a fleet carries each instance type's model files
and the CloudWatch agent's (prod's fleet: about 17.5 KB), and a sealed host adds ``s3_get``
and the ECR login. Every fleet host and a sealed single VM therefore keep in their user data
only what must exist before any unit starts (Docker's drop-in) and a first ``runcmd`` step
that fetches this bundle with the role's credentials (a sealed host through the S3 gateway
endpoint; an open fleet from its own bucket, components/aws/bootstrap_bucket.py), checks
its SHA-256 (the user data names it) and unpacks it over ``/``.

Pure (no Pulumi): the same files give the same bytes (no timestamps, root-owned, sorted),
so the object's key, ``bootstrap/<sha256>.tar.gz``, changes exactly when a file does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

BUNDLE_PREFIX = "bootstrap"
BUNDLE_PATH = "/run/localai-bootstrap.tar.gz"
BUNDLE_ATTEMPTS = 6
BUNDLE_RETRY_S = 10
"""Six tries ten seconds apart: an endpoint's DNS may lag the first boot by seconds. Then
the step fails, the launch hook times out and the group replaces the instance."""


def pack(files: dict[str, tuple[str, str]]) -> bytes:
    """A gzipped tar of ``files`` (installed path -> (content, octal permissions)): regular
    files only, owned by root, each with its mode, mtime 0, in path order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(files):
            content, permissions = files[path]
            data = content.encode("utf-8")
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = int(permissions, 8)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as packed:
        packed.write(raw.getvalue())
    return out.getvalue()


def bundle_key(bundle: bytes) -> str:
    return f"{BUNDLE_PREFIX}/{hashlib.sha256(bundle).hexdigest()}.tar.gz"


AWS_CLI_SNAP = (
    'PATH="$PATH:/snap/bin"; command -v aws >/dev/null || '
    "{ snap wait system seed.loaded; snap install aws-cli --classic; } || "
    '{ echo "localai: no aws CLI for the bootstrap bundle" >&2; exit 1; }; '
)
"""Plain Ubuntu has no aws CLI at first boot (the DLAMI has): the snap, as localai-run
installs it later, before the fetch (snapd may still be seeding at first boot)."""


def fetch_step(bucket: str, region: str, bundle: bytes, *, install_aws_cli: bool = False) -> str:
    """The runcmd line that fetches, checks and unpacks the bundle, or exits 1 (nothing is
    unpacked from an object whose SHA-256 differs). ``install_aws_cli``: plain Ubuntu."""
    sha = hashlib.sha256(bundle).hexdigest()
    get = (
        f"aws s3api get-object --region {region} --bucket {bucket} "
        f"--key {bundle_key(bundle)} {BUNDLE_PATH} >/dev/null"
    )
    check = f'echo "{sha}  {BUNDLE_PATH}" | sha256sum -c --quiet'
    give_up = 'echo "localai: no bootstrap bundle" >&2; exit 1'
    return (
        (AWS_CLI_SNAP if install_aws_cli else "") + f"n=0; until {get} && {check}; do n=$((n+1)); "
        f'[ "$n" -ge {BUNDLE_ATTEMPTS} ] && {{ {give_up}; }}; sleep {BUNDLE_RETRY_S}; done; '
        f"tar -xzf {BUNDLE_PATH} -C / && rm -f {BUNDLE_PATH} || exit 1"
    )
