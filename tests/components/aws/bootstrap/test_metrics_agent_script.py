"""localai-metrics-agent as shipped in the user data, run against an HTTPS stand-in of the
agent's bucket: real curl, real gpg (a test key pinned in place of Amazon's), a real .deb
built with dpkg-deb. ``dpkg -i`` unpacks into a scratch root (not this machine's /opt) and
the agent's ``amazon-cloudwatch-agent-ctl`` is a stand-in that records its arguments."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.aws.bootstrap.cloud_init import (
    METRICS_AGENT,
    METRICS_AGENT_CONFIG,
    METRICS_AGENT_GPU_CONFIG,
    render_user_data,
)
from components.aws.observability import HOST_EVENTS
from tests.components.aws.bootstrap.cloud_init_support import (
    FILES_DIR,
    decoded_files,
    fleet_spec,
    make_spec,
)
from tests.support.cloudwatch_patterns import matches

KEY_PATH = "/assets/amazon-cloudwatch-agent.gpg"
DEB_PATH = "/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb"
SIG_PATH = f"{DEB_PATH}.sig"
CTL = "opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
VERSION = "1.300071.0b1234"
PINNED = re.compile(r"^readonly AGENT_KEY_FINGERPRINT=([0-9A-F]{40})$", re.M)

pytestmark = pytest.mark.skipif(
    not all(map(shutil.which, ("gpg", "dpkg-deb", "curl"))), reason="needs gpg, dpkg-deb and curl"
)


def gpg(home: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), *args], check=True, capture_output=True, **kwargs
    )


def make_key(home: Path, uid: str) -> str:
    home.mkdir(mode=0o700)
    gpg(home, "--passphrase", "", "--quick-gen-key", uid, "rsa2048", "sign", "never")
    listing = gpg(home, "--with-colons", "--fingerprint", text=True).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Iterator[dict[str, tuple[Path, str]]]:
    base = tmp_path_factory.mktemp("gpg")
    made = {
        name: (base / name, make_key(base / name, f"{name} <{name}@example.test>"))
        for name in ("agent", "other")
    }
    yield made
    for home, _ in made.values():  # key generation and signing started a gpg-agent each
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


@pytest.fixture(scope="module")
def agent_deb(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("deb")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        "Package: amazon-cloudwatch-agent\nVersion: 1.300071.0\nArchitecture: amd64\n"
        "Maintainer: test <t@example.test>\nDescription: stand-in\n"
    )
    ctl = root / CTL
    ctl.parent.mkdir(parents=True)
    ctl.write_text('#!/bin/sh\necho "$*" >> "$CTL_LOG"\n')
    ctl.chmod(0o755)
    (ctl.parent / "CWAGENT_VERSION").write_text(VERSION + "\n")
    out = root.parent / "agent.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def sign(home: Path, data: bytes, tmp: Path) -> bytes:
    path = tmp / "to-sign"
    path.write_bytes(data)
    gpg(home, "--yes", "--output", str(tmp / "sig"), "--detach-sign", str(path))
    return (tmp / "sig").read_bytes()


def public_key(home: Path) -> bytes:
    return gpg(home, "--export").stdout


class Host:
    """A scratch host: the settings, the agent's configuration, PATH stand-ins."""

    def __init__(self, tmp: Path, server, pinned: str, spec, *, gpu: bool) -> None:
        self.tmp = tmp
        files = decoded_files(render_user_data(spec))
        script = PINNED.sub(f"readonly AGENT_KEY_FINGERPRINT={pinned}", files[METRICS_AGENT])
        assert PINNED.search(files[METRICS_AGENT]), "the pinned fingerprint line moved"
        self.etc = tmp / "etc"
        self.etc.mkdir()
        (self.etc / "localai.conf").write_text(
            f"LOCALAI_REGION=us-east-1\nLOCALAI_GPU_CAPABLE={1 if gpu else 0}\n"
        )
        for path in (METRICS_AGENT_CONFIG, METRICS_AGENT_GPU_CONFIG):
            if path in files:
                (self.etc / Path(path).name).write_text(files[path])
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.script = self.bin / "localai-metrics-agent"
        self.script.write_text(script)
        timeline = self.bin / "localai-timeline"
        timeline.write_text((FILES_DIR / "localai-timeline.sh").read_text())
        self.root = tmp / "root"
        self.root.mkdir()
        dpkg = self.bin / "dpkg"
        dpkg.write_text(
            "#!/bin/sh\n"
            'case "$1" in\n'
            "  --print-architecture) echo amd64 ;;\n"
            '  -i) echo "$*" >> "$DPKG_LOG"; exec dpkg-deb -x "$3" "$DPKG_ROOT" ;;\n'
            "  *) exit 2 ;;\n"
            "esac\n"
        )
        for tool in (self.script, timeline, dpkg):
            tool.chmod(0o755)
        self.server = server

    def run(self) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "LOCALAI_CONF": str(self.etc / "localai.conf"),
            "LOCALAI_CW_AGENT_BASE_URL": self.server.base_url,
            "LOCALAI_CW_AGENT_CTL": str(self.root / CTL),
            "CURL_CA_BUNDLE": str(self.server_cert),
            "DPKG_LOG": str(self.tmp / "dpkg.log"),
            "DPKG_ROOT": str(self.root),
            "CTL_LOG": str(self.tmp / "ctl.log"),
        }
        env.pop("LOCALAI_LOG_GROUP", None)
        return subprocess.run(
            [str(self.script)], env=env, capture_output=True, text=True, timeout=120
        )

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def host_factory(tmp_path, file_server, tls_certificate, keys, agent_deb):
    def make(
        *, signer: str = "agent", gpu: bool = False, deb: bytes = agent_deb, spec=None
    ) -> Host:
        home, _ = keys[signer]
        file_server.files[KEY_PATH] = public_key(keys["agent"][0]) + public_key(home)
        file_server.files[DEB_PATH] = deb
        file_server.files[SIG_PATH] = sign(home, agent_deb, tmp_path)
        spec = spec or make_spec(gpu=gpu, region="us-east-1")
        host = Host(tmp_path / "host", file_server, keys["agent"][1], spec, gpu=gpu)
        host.server_cert = tls_certificate[0]
        return host

    (tmp_path / "host").mkdir()
    return make


def test_the_shipped_script_pins_amazons_agent_key():
    text = decoded_files(render_user_data(make_spec()))[METRICS_AGENT]
    assert PINNED.search(text).group(1) == "937616F3450B7D806CBD9725D58167303B789C72"


def test_a_signed_package_is_installed_and_the_agent_started_with_the_hosts_config(
    host_factory, file_server
):
    host = host_factory()
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert [path for path, *_ in file_server.requests] == [KEY_PATH, DEB_PATH, SIG_PATH]
    assert host.log("dpkg").startswith("-i -E ")
    config = host.etc / "cloudwatch-agent.json"
    assert host.log("ctl") == f"-a fetch-config -m ec2 -s -c file:{config}\n"
    assert "phase=metrics_agent t=" in result.stderr
    assert f"result=started version={VERSION}" in result.stderr
    assert agent_events(result.stderr, "MetricsAgentFailures") == 0
    assert len(timeline_lines(result.stderr)) == 1


def test_an_installed_agent_is_only_restarted_with_its_config(host_factory, file_server):
    host = host_factory()
    assert host.run().returncode == 0
    file_server.requests.clear()
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert file_server.requests == [], "nothing is downloaded again"
    assert host.log("ctl").count("fetch-config") == 2


def timeline_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("localai-boot: ")]


def agent_events(stderr: str, metric: str) -> int:
    """How many of the script's timeline lines the stack's metric filter counts."""
    pattern = next(e.pattern for e in HOST_EVENTS if e.metric == metric)
    return sum(matches(pattern, line) for line in timeline_lines(stderr))


def test_a_package_signed_by_another_key_is_never_installed(host_factory):
    """The downloaded key file holds both keys, so gpg verifies the signature: only the
    pinned primary fingerprint tells them apart."""
    host = host_factory(signer="other")
    result = host.run()
    assert result.returncode == 1
    assert "not the agent's key" in result.stderr
    assert agent_events(result.stderr, "MetricsAgentFailures") == 1
    assert host.log("dpkg") == "" and host.log("ctl") == ""


def test_a_tampered_package_is_never_installed(host_factory, agent_deb):
    host = host_factory(deb=agent_deb[:-1] + bytes([agent_deb[-1] ^ 1]))
    result = host.run()
    assert result.returncode == 1
    assert "signature does not verify" in result.stderr
    assert host.log("dpkg") == "" and host.log("ctl") == ""


def test_a_failed_download_fails_the_unit_and_is_reported(host_factory, file_server):
    host = host_factory()
    file_server.script[DEB_PATH] = [("status", 503)] * 4  # curl's 3 retries, then the unit's
    result = host.run()
    assert result.returncode == 1
    assert f"could not download {file_server.base_url}{DEB_PATH}" in result.stderr
    assert "result=failed" in result.stderr
    assert host.log("dpkg") == ""


def test_a_gpu_host_starts_the_agent_with_the_gpu_configuration(host_factory):
    host = host_factory(gpu=True)
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert host.log("ctl").endswith(f"file:{host.etc / 'cloudwatch-agent.json'}\n")
    assert "nvidia_gpu" in (host.etc / "cloudwatch-agent.json").read_text()


@pytest.mark.parametrize("gpu", [False, True])
def test_a_fleet_host_picks_its_types_configuration(host_factory, gpu: bool):
    """A fleet's types may differ: both files ship, and the type's LOCALAI_GPU_CAPABLE
    (written by localai-host-profile) chooses."""
    spec = fleet_spec(metrics_namespace="LocalAI/localai-prod", region="us-east-1")
    host = host_factory(spec=spec, gpu=gpu)
    assert "nvidia_gpu" not in (host.etc / "cloudwatch-agent.json").read_text()
    assert "nvidia_gpu" in (host.etc / "cloudwatch-agent-gpu.json").read_text()
    result = host.run()
    assert result.returncode == 0, result.stderr
    chosen = "cloudwatch-agent-gpu.json" if gpu else "cloudwatch-agent.json"
    assert host.log("ctl").endswith(f"file:{host.etc / chosen}\n")
