"""components/aws/bootstrap/bundle.py and a sealed fleet host's bundled user data: the
files it packs, its determinism, the user data that stays, and, for real, the first
runcmd step: the pinned aws CLI fetches the bundle from moto's S3 (every signature checked)
and unpacks it over ``/`` inside a private mount namespace (overlays on /etc, /usr/local
and /run), which must then hold exactly the files of the unbundled host."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from components.aws.bootstrap.bundle import BUNDLE_PATH, bundle_key, fetch_step, pack
from components.aws.bootstrap.cloud_init import (
    DOCKER_DROPIN_PATH,
    render_bundle,
    render_user_data,
    render_user_data_base64,
)
from components.aws_limits import USER_DATA_LIMIT_BYTES
from tests.components.aws.bootstrap.cloud_init_support import fleet_spec, skip_or_fail
from tests.support.s3_server import aws_cli_path

BUCKET = "localai-test-123456789012-eu-west-1"


def parse(document: str) -> dict:
    import yaml

    assert document.startswith("#cloud-config\n")
    return yaml.safe_load(document)


def members(bundle: bytes) -> dict[str, tuple[int, str, int, int]]:
    """path -> (mode, content, uid, gid) of every member."""
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        return {
            "/" + m.name: (m.mode, tar.extractfile(m).read().decode(), m.uid, m.gid)
            for m in tar.getmembers()
        }


def unbundled(spec) -> dict[str, tuple[int, str]]:
    """What the same spec writes without a bundle: path -> (mode, content)."""
    files = parse(render_user_data(spec))["write_files"]
    return {f["path"]: (int(f.get("permissions", "0644"), 8), f["content"]) for f in files}


def test_the_bundle_holds_every_file_but_the_drop_in_with_its_mode() -> None:
    spec = fleet_spec()
    expected = unbundled(spec)
    del expected[DOCKER_DROPIN_PATH]
    bundled = members(render_bundle(dataclasses.replace(spec, bundle_bucket=BUCKET)))
    assert {p: (m, c) for p, (m, c, _, _) in bundled.items()} == expected
    assert {(uid, gid) for _, _, uid, gid in bundled.values()} == {(0, 0)}
    with tarfile.open(fileobj=io.BytesIO(render_bundle(spec))) as tar:
        assert all(m.isfile() and m.mtime == 0 for m in tar.getmembers())
        assert [m.name for m in tar.getmembers()] == sorted(m.name for m in tar.getmembers())


def test_the_bundled_user_data_keeps_the_drop_in_and_fetches_first() -> None:
    spec = dataclasses.replace(fleet_spec(), bundle_bucket=BUCKET)
    document = parse(render_user_data(spec))
    assert [f["path"] for f in document["write_files"]] == [DOCKER_DROPIN_PATH]
    bundle = render_bundle(spec)
    runcmd = document["runcmd"]
    assert runcmd[0] == "rc=0"
    assert runcmd[1] == fetch_step(BUCKET, spec.region, bundle)
    assert f"--key {bundle_key(bundle)} " in runcmd[1]
    assert hashlib.sha256(bundle).hexdigest() in runcmd[1]
    assert runcmd[2:] == parse(render_user_data(fleet_spec()))["runcmd"][1:]


def test_the_bundle_and_its_key_are_the_same_for_the_same_spec_only() -> None:
    spec = dataclasses.replace(fleet_spec(), bundle_bucket=BUCKET)
    assert render_bundle(spec) == render_bundle(spec)
    assert bundle_key(render_bundle(spec)).startswith("bootstrap/")
    other = dataclasses.replace(spec, port=9000)
    assert bundle_key(render_bundle(other)) != bundle_key(render_bundle(spec))
    assert render_user_data(other) != render_user_data(spec)


def test_six_gpu_types_with_three_models_fit_only_bundled() -> None:
    from tests.components.aws.bootstrap.cloud_init_support import HostProfile, model_set

    models = ("llama-3.1-8b-instruct", "phi-3.5-mini-instruct", "qwen2.5-0.5b-instruct")
    profiles = {
        t: HostProfile(4.0, 14336, 4, True, model_set(models, 0), model_set(models, 99))
        for t in ("g6.xlarge", "g6.2xlarge", "g5.xlarge", "g5.2xlarge", "g4dn.xlarge", "g6e.xlarge")
    }
    base = fleet_spec()
    spec = dataclasses.replace(
        base,
        fleet=dataclasses.replace(base.fleet, profiles=profiles),
        default_model=models[0],
        cpu_models=model_set(models, 0),
        gpu_models=model_set(models, 99),
    )
    with pytest.raises(ValueError, match="EC2 allows 16384"):
        render_user_data_base64(spec)
    packed = render_user_data_base64(dataclasses.replace(spec, bundle_bucket=BUCKET))
    assert len(packed) * 3 // 4 < 2048 < USER_DATA_LIMIT_BYTES


@pytest.mark.parametrize("bucket", ["Upper", "ab", "a" * 64, "x y", "-lead"])
def test_a_bad_bucket_is_refused(bucket: str) -> None:
    with pytest.raises(ValueError, match="is not an S3 bucket name"):
        render_user_data(dataclasses.replace(fleet_spec(), bundle_bucket=bucket))


def test_pack_is_deterministic_and_keeps_modes() -> None:
    files = {"/usr/local/sbin/b": ("#!/bin/sh\n", "0755"), "/etc/a.conf": ("x=1\n", "0644")}
    assert pack(files) == pack(dict(reversed(files.items())))
    assert members(pack(files)) == {
        "/etc/a.conf": (0o644, "x=1\n", 0, 0),
        "/usr/local/sbin/b": (0o755, "#!/bin/sh\n", 0, 0),
    }


# -- the first boot step, for real -------------------------------------------------------


@pytest.fixture
def namespace_root(tmp_path: Path) -> Path:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_or_fail("the unpack over / runs in a private mount namespace: root and unshare")
    return tmp_path


NAMESPACE = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs "$T/ovl"
for d in /etc /usr/local /run; do
    mkdir -p "$T/ovl/up$d" "$T/ovl/work$d"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$T/ovl/up$d,workdir=$T/ovl/work$d" "$d"
done
set +e
sh -c "$LINE"
rc=$?
cp -a "$T/ovl/up" "$T/result"
exit "$rc"
"""


def run_step(root: Path, line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (root / "ovl").mkdir()
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", NAMESPACE],
        env={**env, "T": str(root), "LINE": line},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def s3_env(s3_server, credentials: dict[str, str], home: Path) -> dict[str, str]:
    return {
        "PATH": aws_cli_path(), "HOME": str(home), "AWS_CA_BUNDLE": s3_server.ca_bundle,
        "AWS_CONFIG_FILE": str(home / "none"), "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": credentials["key"], "AWS_SECRET_ACCESS_KEY": credentials["secret"],
        "AWS_SESSION_TOKEN": credentials["token"],
    }  # fmt: skip


def bucket_with_bundle(s3_server, bucket: str, bundle: bytes, body: bytes | None = None):
    """``bucket`` holding ``body`` (the bundle itself by default) at the bundle's key; the
    role credentials that may read it."""
    with s3_server.setup():
        admin = s3_server.client("s3")
        admin.create_bucket(Bucket=bucket)
        admin.put_object(
            Bucket=bucket, Key=bundle_key(bundle), Body=bundle if body is None else body
        )
        return s3_server.role_credentials(bucket)


def fast(line: str) -> str:
    return line.replace("sleep 10", "sleep 0")


def test_the_first_step_fetches_checks_and_unpacks_over_root(namespace_root, s3_server) -> None:
    bucket = "bundle-fetched-123456789012"
    spec = dataclasses.replace(fleet_spec(), bundle_bucket=bucket, region="us-east-1")
    bundle = render_bundle(spec)
    role = bucket_with_bundle(s3_server, bucket, bundle)
    line = parse(render_user_data(spec))["runcmd"][1]
    done = run_step(namespace_root, line, s3_env(s3_server, role, namespace_root))
    assert done.returncode == 0, done.stderr
    written = {}
    for path in (namespace_root / "result").rglob("*"):
        if path.is_file():
            relative = "/" + str(path.relative_to(namespace_root / "result"))
            written[relative] = (path.stat().st_mode & 0o7777, path.read_text())
    expected = {p: (m, c) for p, (m, c, _, _) in members(bundle).items()}
    assert written == expected, "the bundle's files, each with its mode, and nothing else"
    assert not (namespace_root / "result/run" / Path(BUNDLE_PATH).name).exists()


def test_a_missing_bundle_is_tried_six_times_and_unpacks_nothing(namespace_root, s3_server) -> None:
    bucket = "bundle-missing-123456789012"
    spec = dataclasses.replace(fleet_spec(), bundle_bucket=bucket, region="us-east-1")
    with s3_server.setup():
        s3_server.client("s3").create_bucket(Bucket=bucket)
        role = s3_server.role_credentials(bucket)
    line = fast(parse(render_user_data(spec))["runcmd"][1])
    done = run_step(namespace_root, line, s3_env(s3_server, role, namespace_root))
    assert done.returncode == 1
    assert done.stderr.count("NoSuchKey") == 6
    assert "localai: no bootstrap bundle" in done.stderr
    assert not list((namespace_root / "result").rglob("localai*"))


def test_a_tampered_bundle_unpacks_nothing(namespace_root, s3_server) -> None:
    bucket = "bundle-tampered-123456789012"
    spec = dataclasses.replace(fleet_spec(), bundle_bucket=bucket, region="us-east-1")
    bundle = render_bundle(spec)
    evil = pack({"/usr/local/sbin/localai-run": ("#!/bin/sh\ncurl evil\n", "0755")})
    role = bucket_with_bundle(s3_server, bucket, bundle, body=evil)
    line = fast(parse(render_user_data(spec))["runcmd"][1])
    done = run_step(namespace_root, line, s3_env(s3_server, role, namespace_root))
    assert done.returncode == 1
    assert not list((namespace_root / "result").rglob("localai-run"))


def test_pack_gives_these_bytes_on_any_machine_at_any_time() -> None:
    """A new package version that packed the same files differently would give every
    fleet a new bundle key, hence a new launch template version and a roll."""
    files = {"/usr/local/sbin/b": ("#!/bin/sh\n", "0755"), "/etc/a.conf": ("x=1\n", "0644")}
    packed = pack(files)
    # gzip's header: no file name (flags 0) and mtime 0; the tar inside, byte for byte
    # (zlib's own output may differ between zlib builds, so it is not pinned).
    assert packed[:10] == bytes.fromhex("1f8b08000000000002ff")  # XFL 2: level 9
    assert hashlib.sha256(gzip.decompress(packed)).hexdigest() == (
        "e0d01e94b2dfbb2b65b41b4db4c17cbf6c1c1f60a8f800299a57f2961ed9b624"
    )
    with tarfile.open(fileobj=io.BytesIO(pack(files))) as tar:
        assert {(m.uname, m.gname) for m in tar.getmembers()} == {("root", "root")}


def test_the_step_waits_ten_seconds_between_six_tries() -> None:
    line = fetch_step(BUCKET, "eu-west-1", b"x")
    assert "sleep 10; done" in line
    assert '[ "$n" -ge 6 ]' in line
    assert line.startswith("n=0; until aws s3api get-object --region eu-west-1 ")
    assert f"{BUNDLE_PATH} >/dev/null && echo " in line


SNAP_STANDIN = """#!/bin/sh
echo "snap $*" >> "$SNAP_LOG"
case "$*" in
  "wait system seed.loaded") exit 0 ;;
  "install aws-cli --classic") [ -n "$SNAP_FAILS" ] && exit 1; ln -s "$REAL_AWS" "$INSTALL_DIR/aws" ;;
  *) exit 2 ;;
esac
"""


@pytest.mark.parametrize("snap_fails", [False, True])
def test_plain_ubuntu_installs_the_aws_cli_snap_before_the_fetch(
    namespace_root, s3_server, snap_fails: bool
) -> None:
    """A CPU fleet boots plain Ubuntu, which has no aws CLI at first boot: the step installs
    the snap first (a stand-in snap that links the real aws CLI), or fails at once."""
    bucket = f"bundle-snap-{int(snap_fails)}-123456789012"
    spec = dataclasses.replace(
        fleet_spec(), bundle_bucket=bucket, region="us-east-1", install_docker=True
    )
    bundle = render_bundle(spec)
    role = bucket_with_bundle(s3_server, bucket, bundle)
    stub, installed = namespace_root / "stub", namespace_root / "installed"
    stub.mkdir()
    installed.mkdir()
    (stub / "snap").write_text(SNAP_STANDIN)
    (stub / "snap").chmod(0o755)
    real_aws = shutil.which("aws", path=aws_cli_path())
    assert real_aws
    env = {
        **s3_env(s3_server, role, namespace_root),
        "PATH": f"{stub}:{installed}:/usr/sbin:/usr/bin:/sbin:/bin",
        "REAL_AWS": real_aws, "INSTALL_DIR": str(installed),
        "SNAP_LOG": str(namespace_root / "snap.log"), "SNAP_FAILS": "1" if snap_fails else "",
    }  # fmt: skip
    assert shutil.which("aws", path=env["PATH"]) is None, "no aws CLI before the step"
    line = fast(parse(render_user_data(spec))["runcmd"][1])
    done = run_step(namespace_root, line, env)
    log = (namespace_root / "snap.log").read_text()
    assert log == "snap wait system seed.loaded\nsnap install aws-cli --classic\n"
    if snap_fails:
        assert done.returncode == 1
        assert "localai: no aws CLI for the bootstrap bundle" in done.stderr
        assert not list((namespace_root / "result").rglob("localai*"))
    else:
        assert done.returncode == 0, done.stderr
        assert (namespace_root / "result/etc/localai/fleet/base.conf").exists()
