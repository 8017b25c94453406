"""Boot the rendered user data under a real systemd and cloud-init: a debootstrapped Debian
bookworm root, booted with ``systemd-nspawn -b`` in its own network namespace, the user data
seeded through cloud-init's NoCloud datasource, a stand-in ``aws`` on its PATH.

The root is built once per machine (debootstrap, then cloud-init installed inside) and kept
under /var/cache/localai-boot; each boot runs on a copy of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

PACKAGES = "systemd,systemd-sysv,dbus,udev,iproute2,python3,curl,ca-certificates,e2fsprogs,util-linux,procps"
STAGE_TWO = ["cloud-init", "docker.io", "docker-registry", "locales"]
"""Installed inside nspawn; locales with en_US.UTF-8 generated, as a cloud image has them
(cloud-init's locale module sets it)."""
CACHE = Path(os.environ.get("LOCALAI_BOOT_CACHE", "/var/cache/localai-boot"))
NSPAWN = ["systemd-nspawn", "-q", "--register=no", "--keep-unit"]
"""No machine registration or scope unit: the test machines run no systemd as PID 1."""
BOOT = ["--private-network", "--console=pipe", "--capability=all",
        "--system-call-filter=@keyring bpf"]  # fmt: skip
"""Its own network namespace; what Docker inside needs (all capabilities, keyrings, BPF)."""
MACHINE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
"""A command run inside sees the machine's environment, not this one's (DOCKER_HOST...)."""
REBOOT_EXIT = 133
"""systemd-nspawn's exit status when the machine asked to reboot."""


def tools_missing() -> list[str]:
    needed = ("debootstrap", "systemd-nspawn", "nsenter")
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def base_root() -> Path:
    """The cached bookworm root with systemd and cloud-init (built on first use)."""
    key = hashlib.sha256(f"{PACKAGES}|{STAGE_TWO}".encode()).hexdigest()[:12]
    root = CACHE / f"bookworm-{key}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(root)],
        check=True, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    # cloud-init's Python dependencies do not configure in a plain chroot: inside nspawn.
    subprocess.run(
        [*NSPAWN, "-D", str(root), "--pipe", "sh", "-c",
         "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
         + " ".join(STAGE_TWO) + " >/dev/null && apt-get clean"
         " && sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen"
         " && locale-gen >/dev/null"],
        check=True, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    (root / "etc/cloud/cloud.cfg.d/90-localai-test.cfg").write_text(
        "datasource_list: [ NoCloud, None ]\n"
    )
    (root / ".complete").write_text("")
    return root


class Machine:
    """One booted copy of the root."""

    def __init__(
        self,
        directory: Path,
        user_data: str,
        *,
        stubs: dict[str, str],
        nspawn_args: list[str] | None = None,
    ) -> None:
        self.root = directory / "root"
        directory.mkdir(parents=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(base_root()), str(self.root)], check=True)
        seed = self.root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True)
        (seed / "meta-data").write_text(
            "instance-id: i-0123456789abcdef0\nlocal-hostname: localai\n"
        )
        (seed / "user-data").write_text(user_data)
        for name, body in stubs.items():
            path = self.root / "usr/local/bin" / name
            path.write_text(body)
            path.chmod(0o755)
        self.console = directory / "console.log"
        self.nspawn_args = nspawn_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.boots = 0

    def boot(self) -> None:
        self.boots += 1
        with self.console.open("ab") as console:
            console.write(f"\n===== boot {self.boots} =====\n".encode())
            self.process = subprocess.Popen(
                [*NSPAWN, *BOOT, *self.nspawn_args, "-D", str(self.root), "-b"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _init_pid(self) -> int | None:
        """PID 1 of the container, seen from here: nspawn's child once it runs systemd."""
        assert self.process is not None
        for child in _children(self.process.pid):
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return child
            except FileNotFoundError:
                continue
        return None

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        pid = self._init_pid()
        assert pid is not None, f"not booted:\n{self.console.read_text()[-2000:]}"
        return subprocess.run(
            ["nsenter", "-t", str(pid), "-a", *argv],
            capture_output=True, text=True, timeout=timeout, check=False, env=MACHINE_ENV,
        )  # fmt: skip

    def wait_until(self, check, *, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._init_pid() is not None and check():
                return
            time.sleep(1)
        log = self.console.read_text(errors="replace")[-3000:]
        raise AssertionError(f"{what} did not happen within {timeout_s}s; console:\n{log}")

    def reboot(self) -> None:
        """`systemctl reboot` inside; nspawn exits 133 and the same root boots again."""
        assert self.process is not None
        self.run("systemctl", "reboot", "--no-block")
        code = self.process.wait(timeout=180)
        assert code == REBOOT_EXIT, f"nspawn exited {code}, not {REBOOT_EXIT} (a reboot)"
        self.boot()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None and self._init_pid() is not None:
            self.run("systemctl", "poweroff", "--no-block")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
