"""S3 on 127.0.0.1 for tests of our S3 code: moto's server (a mock of the cloud API, run
as its own process) over HTTPS with the tests' certificate, and that checks every request's
SigV4 signature once set up.

``s3_server.setup()`` opens a window in which the test creates what it needs (buckets,
objects, an IAM user or role) with boto3 without credentials that matter; on leaving it,
moto authenticates every later request (``/moto-api/reset-auth`` 0: the access key must be
one moto issued, and the signature must match its secret), as S3 does.

``imds_server(credentials)`` runs the IMDSv2 stand-in (tests/support/imds.py) on 127.0.0.1
with a role's temporary credentials, where botocore (and so the aws CLI) finds them through
``AWS_EC2_METADATA_SERVICE_ENDPOINT``: the path an EC2 host takes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.ports import free_port, listening

REGION = "us-east-1"
IMDS_SCRIPT = Path(__file__).with_name("imds.py")


def _start(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{command[:3]} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


class S3Server:
    def __init__(self, certificate: tuple[Path, Path], log: Path):
        self.ca_bundle = str(certificate[0])
        self.port = free_port()
        self.endpoint_url = f"https://127.0.0.1:{self.port}"
        self.log = log
        self._process = _start(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port),
             "-c", str(certificate[0]), "-k", str(certificate[1])],
            self.port, log,
        )  # fmt: skip

    def client(self, service: str, **credentials: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            verify=self.ca_bundle,
            aws_access_key_id=credentials.get("key", "setup"),
            aws_secret_access_key=credentials.get("secret", "setup"),
            aws_session_token=credentials.get("token"),
        )

    def _reset_auth(self, value: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=value.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        context = ssl.create_default_context(cafile=self.ca_bundle)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            assert response.status == 200

    @contextlib.contextmanager
    def setup(self) -> Iterator[None]:
        """Requests inside are not authenticated; every request after is."""
        self._reset_auth("inf")
        try:
            yield
        finally:
            self._reset_auth("0")

    def reader_key(self, bucket: str) -> dict[str, str]:
        """An IAM user's access key that may read ``bucket`` (call inside :meth:`setup`)."""
        iam = self.client("iam")
        user = f"reader-{bucket}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=_read_policy(bucket))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}

    def writer_key(self, bucket: str) -> dict[str, str]:
        """An IAM user's key that may do anything to ``bucket`` and its objects: the
        operator who mirrors the weights (call inside :meth:`setup`)."""
        iam = self.client("iam")
        user = f"writer-{bucket}"
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
        ]}  # fmt: skip
        iam.put_user_policy(UserName=user, PolicyName="write", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}

    def role_credentials(self, bucket: str) -> dict[str, str]:
        """Temporary credentials of a role that may read ``bucket``, as an instance profile
        hands them out (call inside :meth:`setup`)."""
        iam = self.client("iam")
        role = f"host-{bucket}"
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": "ec2.amazonaws.com"}}]}  # fmt: skip
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=_read_policy(bucket))
        found = self.client("sts").assume_role(RoleArn=arn, RoleSessionName="i-0123456789abcdef0")
        creds = found["Credentials"]
        return {
            "role": role,
            "key": creds["AccessKeyId"],
            "secret": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


def _read_policy(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})  # fmt: skip


@pytest.fixture(scope="session")
def s3_server(tls_certificate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tls_certificate, tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def imds_server(credentials: dict[str, str], directory: Path) -> Iterator[str]:
    """IMDSv2 on 127.0.0.1 serving ``credentials`` (from :meth:`S3Server.role_credentials`)
    as the instance profile's; yields its endpoint URL."""
    meta = {
        "iam/security-credentials/": credentials["role"],
        f"iam/security-credentials/{credentials['role']}": {
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": credentials["key"],
            "SecretAccessKey": credentials["secret"],
            "Token": credentials["token"],
            "Expiration": credentials["expiration"],
        },
        "placement/region": REGION,
    }
    (directory / "meta-data.json").write_text(json.dumps(meta))
    port = free_port()
    process = _start(
        [sys.executable, str(IMDS_SCRIPT), str(directory / "meta-data.json"), "127.0.0.1", str(port)],
        port, directory / "imds.log",
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


S3_HELPER = Path(__file__).resolve().parents[2] / "components" / "weights" / "localai-fetch-s3.sh"


@functools.cache
def helper_bin() -> Path:
    """A directory with ``s3_get``, as a host that reads from S3 installs it."""
    directory = Path(tempfile.mkdtemp(prefix="localai-s3-helper-"))
    (directory / "s3_get").symlink_to(S3_HELPER)
    return directory


def aws_cli_path() -> str:
    """PATH with the S3 helper and the pinned aws CLI (requirements-dev.txt, beside the test
    interpreter) first."""
    return os.pathsep.join(
        [str(helper_bin()), str(Path(sys.executable).parent), os.environ["PATH"]]
    )
