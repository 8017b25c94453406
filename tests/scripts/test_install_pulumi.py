"""scripts/install-pulumi.sh run for real against an HTTPS server on 127.0.0.1.

The server (a self-signed certificate that curl trusts through ``CURL_CA_BUNDLE``)
serves a stand-in release: a ``pulumi-v<version>-<os>-<arch>.tar.gz`` laid out like
pulumi/pulumi's goreleaser archives (binaries under ``pulumi/``) and the release's
``pulumi-<version>-checksums.txt``. ``uname`` is replaced on PATH to play other
platforms. Every failure must stop with one clear line and leave nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "scripts" / "install-pulumi.sh"
RELEASE_FILE = ROOT / "scripts" / "pulumi-cli.release"
VERSION = re.search(r"^VERSION=(.+)$", RELEASE_FILE.read_text(), re.M).group(1)

STAND_IN_PULUMI = f"""#!/usr/bin/env bash
[ -z "${{CALLS:-}}" ] || printf '%s\\t%s\\t%s\\n' pulumi "$*" "path=$0" >> "$CALLS"
case "$1" in
  version) echo v{VERSION} ;;
  whoami) exit 1 ;;
esac
exit 0
"""


def stand_in_archive(pulumi_script: str = STAND_IN_PULUMI) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (
            ("pulumi/pulumi", pulumi_script),
            ("pulumi/pulumi-language-python", "#!/bin/sh\nexit 0\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Release:
    """A stand-in GitHub release on the shared HTTPS file server."""

    def __init__(self, server):
        self.server = server

    @property
    def files(self) -> dict[str, bytes]:
        return self.server.files

    @property
    def requests(self) -> list[str]:
        return RequestPaths(self.server.requests)

    def truncate(self, path: str) -> None:
        self.server.script[path] = [("truncate", len(self.server.files[path]) // 2)]

    def publish(self, os_arch: str, archive: bytes, listed_hash: str | None = None) -> str:
        name = f"pulumi-v{VERSION}-{os_arch}.tar.gz"
        self.files[f"/dl/v{VERSION}/{name}"] = archive
        digest = listed_hash or hashlib.sha256(archive).hexdigest()
        sums_path = f"/dl/v{VERSION}/pulumi-{VERSION}-checksums.txt"
        previous = self.files.get(sums_path, b"").decode()
        self.files[sums_path] = (previous + f"{'0' * 64}  other.zip\n{digest}  {name}\n").encode()
        return name


class RequestPaths(list):
    """The requested paths, clearable like the list the server records into."""

    def __init__(self, records: list):
        super().__init__(path for path, _range, _auth in records)
        self._records = records

    def clear(self) -> None:
        self._records.clear()
        super().clear()


@pytest.fixture
def certificate(tls_certificate: tuple[Path, Path]) -> tuple[Path, Path]:
    return tls_certificate


@pytest.fixture
def server(file_server) -> tuple[str, Release]:
    return f"{file_server.base_url}/dl", Release(file_server)


def fake_uname(bin_dir: Path, kernel: str, machine: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "uname"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in -s) echo {kernel} ;; -m) echo {machine} ;; *) echo {kernel} ;; esac\n'
    )
    script.chmod(0o755)


def install(
    tmp_path: Path,
    base_url: str,
    certificate: tuple[Path, Path],
    *,
    platform: tuple[str, str] = ("Linux", "x86_64"),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    fake_uname(bin_dir, *platform)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LOCALAI_TOOLS_DIR": str(tmp_path / "tools"),
        "PULUMI_RELEASES_URL": base_url,
        "CURL_CA_BUNDLE": str(certificate[0]),
        **env,
    }
    return subprocess.run(
        ["bash", str(INSTALLER)], env=environment, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def assert_nothing_installed(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    left = sorted(p.name for p in tools.iterdir()) if tools.exists() else []
    assert left == [], f"a failed install left {left} in {tools}"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == "", "stdout is only ever the installed path"
    errors = [
        line
        for line in result.stderr.splitlines()
        if not line.startswith("install-pulumi: downloading")
    ]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_verified_archive_installs_and_runs(tmp_path: Path, server, certificate) -> None:
    base, release = server
    name = release.publish("linux-x64", stand_in_archive())
    result = install(tmp_path, base, certificate)
    assert result.returncode == 0, result.stderr
    dest = Path(result.stdout.strip())
    assert dest == tmp_path / "tools" / f"pulumi-v{VERSION}"
    version = subprocess.run([dest / "pulumi", "version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"v{VERSION}"
    assert (dest / "pulumi-language-python").exists()
    assert sorted(p.name for p in (tmp_path / "tools").iterdir()) == [dest.name], "no leftovers"
    assert release.requests == [
        f"/dl/v{VERSION}/{name}",
        f"/dl/v{VERSION}/pulumi-{VERSION}-checksums.txt",
    ]


def test_a_second_run_uses_the_installed_cli_without_downloading(
    tmp_path: Path, server, certificate
) -> None:
    base, release = server
    release.publish("linux-x64", stand_in_archive())
    first = install(tmp_path, base, certificate)
    assert first.returncode == 0, first.stderr
    release.requests.clear()
    second = install(tmp_path, base, certificate)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert release.requests == []


def test_a_checksum_mismatch_installs_nothing(tmp_path: Path, server, certificate) -> None:
    base, release = server
    release.publish("linux-x64", stand_in_archive(), listed_hash="ab" * 32)
    line = one_line_error(install(tmp_path, base, certificate))
    assert "checksum mismatch for pulumi-v" in line and "ab" * 32 in line
    assert "nothing was installed" in line
    assert_nothing_installed(tmp_path)


def test_a_truncated_download_installs_nothing(tmp_path: Path, server, certificate) -> None:
    base, release = server
    name = release.publish("linux-x64", stand_in_archive())
    release.truncate(f"/dl/v{VERSION}/{name}")
    line = one_line_error(install(tmp_path, base, certificate))
    assert line.startswith(f"install-pulumi: download of {base}/v{VERSION}/{name} failed")
    assert_nothing_installed(tmp_path)


def test_a_missing_release_asset_installs_nothing(tmp_path: Path, server, certificate) -> None:
    base, _release = server
    line = one_line_error(install(tmp_path, base, certificate))
    assert "failed" in line and "404" in line
    assert_nothing_installed(tmp_path)


def test_a_release_without_this_archive_in_its_checksums_installs_nothing(
    tmp_path: Path, server, certificate
) -> None:
    base, release = server
    name = release.publish("linux-x64", stand_in_archive())
    sums = f"/dl/v{VERSION}/pulumi-{VERSION}-checksums.txt"
    release.files[sums] = b"".join(
        line + b"\n" for line in release.files[sums].splitlines() if name.encode() not in line
    )
    line = one_line_error(install(tmp_path, base, certificate))
    assert f"does not list {name}" in line
    assert_nothing_installed(tmp_path)


@pytest.mark.parametrize(
    ("kernel", "machine", "what"),
    [("FreeBSD", "x86_64", "OS (FreeBSD)"), ("Linux", "riscv64", "CPU (riscv64 on Linux)")],
)
def test_an_unknown_platform_is_refused_before_any_download(
    tmp_path: Path, server, certificate, kernel: str, machine: str, what: str
) -> None:
    base, release = server
    release.publish("linux-x64", stand_in_archive())
    line = one_line_error(install(tmp_path, base, certificate, platform=(kernel, machine)))
    assert f"no Pulumi CLI build for this {what}" in line
    assert release.requests == []
    assert_nothing_installed(tmp_path)


@pytest.mark.parametrize(
    ("kernel", "machine", "os_arch"),
    [
        ("Linux", "x86_64", "linux-x64"),
        ("Linux", "aarch64", "linux-arm64"),
        ("Darwin", "x86_64", "darwin-x64"),
        ("Darwin", "arm64", "darwin-arm64"),
    ],
)
def test_each_supported_platform_gets_its_own_archive(
    tmp_path: Path, server, certificate, kernel: str, machine: str, os_arch: str
) -> None:
    base, release = server
    for other in ("linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"):
        release.publish(other, stand_in_archive(f"#!/bin/sh\necho {other}\n"))
    result = install(tmp_path, base, certificate, platform=(kernel, machine))
    assert result.returncode == 0, result.stderr
    assert release.requests[0] == f"/dl/v{VERSION}/pulumi-v{VERSION}-{os_arch}.tar.gz"
    ran = subprocess.run([Path(result.stdout.strip()) / "pulumi"], capture_output=True, text=True)
    assert ran.stdout.strip() == os_arch


def test_a_pinned_hash_wins_over_the_release_checksums(tmp_path: Path, server, certificate) -> None:
    base, release = server
    archive = stand_in_archive()
    release.publish("linux-x64", archive)
    pinned = tmp_path / "pinned.release"
    pinned.write_text(f"VERSION={VERSION}\nSHA256_linux_x64={'cd' * 32}\n")
    line = one_line_error(install(tmp_path, base, certificate, LOCALAI_PULUMI_RELEASE=str(pinned)))
    assert "the pinned hash in pinned.release says " + "cd" * 32 in line
    assert_nothing_installed(tmp_path)
    assert not any(r.endswith("checksums.txt") for r in release.requests)

    pinned.write_text(
        f"VERSION={VERSION}\nSHA256_linux_x64={hashlib.sha256(archive).hexdigest()}\n"
    )
    release.requests.clear()
    result = install(tmp_path, base, certificate, LOCALAI_PULUMI_RELEASE=str(pinned))
    assert result.returncode == 0, result.stderr
    assert release.requests == [f"/dl/v{VERSION}/pulumi-v{VERSION}-linux-x64.tar.gz"]


def test_a_plain_http_mirror_is_refused(tmp_path: Path, certificate) -> None:
    line = one_line_error(install(tmp_path, "http://127.0.0.1:9/dl", certificate))
    assert "PULUMI_RELEASES_URL must be an https:// URL" in line
    assert_nothing_installed(tmp_path)


def test_an_archive_without_the_binary_installs_nothing(
    tmp_path: Path, server, certificate
) -> None:
    base, release = server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("README")
        tar.addfile(info, io.BytesIO(b""))
    release.publish("linux-x64", buffer.getvalue())
    line = one_line_error(install(tmp_path, base, certificate))
    assert "has no pulumi/pulumi" in line
    assert_nothing_installed(tmp_path)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_pinned_cli_is_not_older_than_the_pinned_sdk() -> None:
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert _version(VERSION) >= _version(sdk), f"CLI {VERSION} is older than the SDK {sdk}"


def test_deploy_installs_the_cli_when_none_is_on_path(tmp_path: Path, server, certificate) -> None:
    base, release = server
    release.publish("linux-x64", stand_in_archive())
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for script in ("deploy.sh", "install-pulumi.sh", "pulumi-cli.release"):
        shutil.copy2(ROOT / "scripts" / script, repo / "scripts" / script)
    shutil.copy2(ROOT / "requirements.txt", repo / "requirements.txt")
    shutil.copytree(ROOT / "stacks", repo / "stacks")
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for tool in ("python", "pip"):
        (venv_bin / tool).write_text("#!/bin/sh\nexit 0\n")
        (venv_bin / tool).chmod(0o755)
    bin_dir = tmp_path / "bin"
    fake_uname(bin_dir, "Linux", "x86_64")
    assert shutil.which("pulumi", path=f"{bin_dir}:/usr/bin:/bin") is None
    calls = tmp_path / "calls.tsv"
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "deploy.sh"), "dev"],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "CALLS": str(calls),
            "PULUMI_RELEASES_URL": base,
            "CURL_CA_BUNDLE": str(certificate[0]),
        },
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    installed = tmp_path / "home" / ".local" / "share" / "localai" / "tools" / f"pulumi-v{VERSION}"
    ups = [line.split("\t") for line in calls.read_text().splitlines() if "\tup " in line]
    assert ups and ups[0][2] == f"path={installed}/pulumi", "pulumi up ran the installed CLI"
    assert f'export PATH="{installed}:$PATH"' in result.stdout


def test_deploy_stops_when_the_cli_cannot_be_installed(tmp_path: Path, certificate) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    shutil.copytree(ROOT / "stacks", repo / "stacks")
    bin_dir = tmp_path / "bin"
    fake_uname(bin_dir, "SunOS", "sparc")
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "deploy.sh"), "dev"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "install-pulumi: no Pulumi CLI build for this OS (SunOS)" in result.stderr
    assert result.stderr.rstrip().endswith("deploy: could not install the Pulumi CLI (see above)")
    assert not (repo / ".venv").exists(), "nothing else ran"
