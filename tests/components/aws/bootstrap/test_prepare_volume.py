"""localai-prepare-volume, run for real against loop devices (needs root and losetup).

The script under test is components/aws/bootstrap/files/localai-prepare-volume.sh, byte for byte what
the user data installs (test_cloud_init checks that). Only the fstab path and the waits
are overridden, through the environment variables the script documents.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.components.aws.bootstrap.cloud_init_support import FILES_DIR, skip_or_fail
from tests.support.locks import held_lock

pytestmark = pytest.mark.slow

SCRIPT = FILES_DIR / "localai-prepare-volume.sh"
SIZE = 64 * 1024 * 1024
EXIT_TIMEOUT, EXIT_REFUSED = 3, 4
UNRELATED_FSTAB = (
    "# /etc/fstab: static file system information.\n"
    "LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n"
    "LABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n"
)
TOOLS = (
    "losetup",
    "blkid",
    "wipefs",
    "mkfs.ext4",
    "mkfs.ext2",
    "mkswap",
    "mount",
    "umount",
    "mountpoint",
    "findmnt",
    "flock",
    "blockdev",
    "dumpe2fs",
    "tune2fs",
    "resize2fs",
)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module", autouse=True)
def _loop_devices_usable(tmp_path_factory: pytest.TempPathFactory) -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root (losetup, mkfs, mount)")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        skip_or_fail(f"missing tools: {', '.join(missing)} (util-linux, e2fsprogs)")
    probe = tmp_path_factory.mktemp("probe") / "probe.img"
    probe.write_bytes(b"\0" * 1024 * 1024)
    result = run("losetup", "--find", "--show", str(probe), check=False)
    if result.returncode != 0:
        skip_or_fail(f"losetup does not work here: {result.stderr.strip()}")
    run("losetup", "--detach", result.stdout.strip())


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo, deepest first)."""
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == str(path) or target.startswith(f"{path}/"):
            targets.append(target)
    return sorted(targets, key=len, reverse=True)


class Volume:
    def __init__(self, device: str, image: Path):
        self.device = device
        self.image = image

    def digest(self) -> str:
        return hashlib.sha256(self.image.read_bytes()).hexdigest()

    def probe(self, tag: str) -> str:
        return run("blkid", "-p", "-s", tag, "-o", "value", self.device, check=False).stdout.strip()


@pytest.fixture
def make_volume(tmp_path: Path) -> Iterator[Callable[..., Volume]]:
    """Factory: a sparse file (64 MiB unless told) attached to a loop device; always cleaned up."""
    devices: list[str] = []

    def make(size: int = SIZE) -> Volume:
        image = tmp_path / f"volume{len(devices)}.img"
        with image.open("wb") as handle:
            handle.truncate(size)
        device = run("losetup", "--find", "--show", str(image)).stdout.strip()
        devices.append(device)
        return Volume(device, image)

    try:
        yield make
    finally:
        for target in mounts_under(tmp_path):
            run("umount", target, check=False)
        for device in devices:
            run("losetup", "--detach", device, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    fstab = tmp_path / "fstab"
    fstab.write_text(UNRELATED_FSTAB)
    return {
        **os.environ,
        "FSTAB": str(fstab),
        "PREPARE_VOLUME_WAIT_S": "20",
        "PREPARE_VOLUME_POLL_S": "0.2",
        "PREPARE_VOLUME_LOCK": str(tmp_path / "prepare.lock"),
    }


@pytest.fixture
def mount_point(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "localai"


def prepare(
    device: str, mount_point: Path | str, env: dict[str, str]
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), device, str(mount_point)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fstab_lines_for(mount_point: Path, env: dict[str, str]) -> list[str]:
    lines = Path(env["FSTAB"]).read_text().splitlines()
    return [line for line in lines if line.split()[1:2] == [str(mount_point)]]


def mounted_source(mount_point: Path) -> str:
    return run("findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(mount_point)).stdout.strip()


def test_blank_volume_is_formatted_mounted_and_in_fstab_once(make_volume, mount_point, env):
    volume = make_volume()
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert volume.probe("TYPE") == "ext4"
    assert volume.probe("LABEL") == "localai-models"
    uuid = volume.probe("UUID")
    assert mounted_source(mount_point) == volume.device
    assert fstab_lines_for(mount_point, env) == [
        f"UUID={uuid} {mount_point} ext4 defaults,nofail,x-systemd.device-timeout=300s 0 2"
    ]
    # Everything that was in fstab before is still there, unchanged and first.
    assert Path(env["FSTAB"]).read_text().startswith(UNRELATED_FSTAB)
    assert "is blank: creating ext4" in result.stdout


def test_existing_filesystem_keeps_its_data(make_volume, mount_point, env):
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    uuid = volume.probe("UUID")
    (mount_point / "models").mkdir()
    (mount_point / "models" / "weights.gguf").write_bytes(b"GGUF" + b"\x01" * 4096)
    run("umount", str(mount_point))

    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert "keeping its data" in result.stdout
    assert "mkfs" not in result.stdout + result.stderr
    assert volume.probe("UUID") == uuid
    assert (mount_point / "models" / "weights.gguf").read_bytes() == b"GGUF" + b"\x01" * 4096
    assert len(fstab_lines_for(mount_point, env)) == 1


def test_running_again_while_mounted_changes_nothing(make_volume, mount_point, env):
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    fstab = Path(env["FSTAB"])
    before = (fstab.read_bytes(), fstab.stat().st_mtime_ns, volume.probe("UUID"))

    for _ in range(2):
        result = prepare(volume.device, mount_point, env)
        assert result.returncode == 0, result.stderr
        assert "already mounted" in result.stdout
    assert (fstab.read_bytes(), fstab.stat().st_mtime_ns, volume.probe("UUID")) == before
    assert mounts_under(mount_point) == [str(mount_point)]  # not stacked twice


def test_stale_fstab_entries_for_the_mount_point_are_replaced(make_volume, mount_point, env):
    fstab = Path(env["FSTAB"])
    stale = (
        f"UUID=00000000-1111-2222-3333-444444444444 {mount_point} ext4 defaults 0 2\n"
        f"/dev/nvme1n1 {mount_point}/ ext4 defaults,nofail 0 2\n"
    )
    fstab.write_text(UNRELATED_FSTAB + stale + "tmpfs /tmp tmpfs defaults 0 0\n")
    volume = make_volume()
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    lines = fstab.read_text().splitlines()
    assert [line for line in lines if str(mount_point) in line] == [
        f"UUID={volume.probe('UUID')} {mount_point} ext4 "
        "defaults,nofail,x-systemd.device-timeout=300s 0 2"
    ]
    assert fstab.read_text().startswith(UNRELATED_FSTAB)
    assert lines[-1] == "tmpfs /tmp tmpfs defaults 0 0"


def test_device_that_appears_late_is_waited_for(make_volume, mount_point, env, tmp_path):
    """Like the by-id symlink udev creates when the EBS attachment completes."""
    volume = make_volume()
    link = tmp_path / "by-id" / "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
    link.parent.mkdir()
    timer = threading.Timer(3.0, lambda: link.symlink_to(volume.device))
    timer.start()
    started = time.monotonic()
    try:
        result = prepare(str(link), mount_point, env)
    finally:
        timer.cancel()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 3.0
    assert f"waiting up to 20s for {link}" in result.stdout
    assert mounted_source(mount_point) == volume.device
    assert volume.probe("TYPE") == "ext4"


def test_device_that_never_appears_times_out_clearly(mount_point, env, tmp_path):
    missing = tmp_path / "by-id" / "nvme-Amazon_Elastic_Block_Store_volmissing"
    started = time.monotonic()
    result = prepare(str(missing), mount_point, {**env, "PREPARE_VOLUME_WAIT_S": "3"})
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_TIMEOUT
    assert f"timed out after 3s waiting for block device {missing}" in result.stderr
    assert 2.0 <= elapsed < 10
    assert fstab_lines_for(mount_point, env) == []


def write_mbr_partition_table(volume: Volume) -> None:
    """A DOS partition table with one Linux partition (what fdisk/parted would write)."""
    entry = bytes([0x00, 0, 0, 0, 0x83, 0, 0, 0])
    entry += (2048).to_bytes(4, "little") + (SIZE // 512 - 2048).to_bytes(4, "little")
    with volume.image.open("r+b") as handle:
        handle.seek(440)
        handle.write(b"\x4c\x41\x49\x31" + b"\0\0")  # disk signature
        handle.write(entry)
        handle.seek(510)
        handle.write(b"\x55\xaa")


def write_unknown_data(volume: Volume) -> None:
    with volume.image.open("r+b") as handle:
        handle.seek(256 * 1024)
        handle.write(b"some bytes no probe recognises " * 64)


def write_filesystem_further_in(volume: Volume) -> None:
    """ext4 in a partition at 4 MiB whose partition table was wiped: the first MiB is zero
    and blkid finds nothing at offset 0."""
    run("mkfs.ext4", "-q", "-F", "-E", f"offset={4 * 1024 * 1024}", str(volume.image), "16M")


def write_backup_gpt_only(volume: Volume) -> None:
    """Only the backup GPT header at the last LBA (the primary was overwritten)."""
    with volume.image.open("r+b") as handle:
        handle.seek(SIZE - 512)
        handle.write(b"EFI PART" + b"\x00\x00\x01\x00" + b"\x5c\x00\x00\x00" + b"\x07" * 80)


FOREIGN_CONTENT = {
    "filesystem further in": (write_filesystem_further_in, "holds data at byte 4195330 of"),
    "backup gpt at the end": (write_backup_gpt_only, f"holds data at byte {SIZE - 511} of"),
    "dos partition table": (write_mbr_partition_table, "'dos' partition table"),
    "swap signature": (lambda v: run("mkswap", v.device), "holds 'swap', not ext4"),
    "ext2 filesystem": (lambda v: run("mkfs.ext2", "-q", v.device), "holds 'ext2', not ext4"),
    "unknown data": (write_unknown_data, "holds data at byte 262145 of"),
}


@pytest.mark.parametrize("content", sorted(FOREIGN_CONTENT))
def test_device_with_foreign_content_is_never_formatted(
    make_volume, mount_point, env, content: str
):
    volume = make_volume()
    write, message = FOREIGN_CONTENT[content]
    write(volume)
    run("blockdev", "--flushbufs", volume.device, check=False)
    before = volume.digest()
    fstab_before = Path(env["FSTAB"]).read_text()

    result = prepare(volume.device, mount_point, env)
    assert result.returncode == EXIT_REFUSED, result.stdout + result.stderr
    assert message in result.stderr
    assert "refusing" in result.stderr
    assert volume.digest() == before
    assert Path(env["FSTAB"]).read_text() == fstab_before
    assert mounts_under(mount_point) == []


def test_mount_point_used_by_another_device_is_refused(make_volume, mount_point, env):
    first, second = make_volume(), make_volume()
    assert prepare(first.device, mount_point, env).returncode == 0
    fstab_before = Path(env["FSTAB"]).read_text()
    result = prepare(second.device, mount_point, env)
    assert result.returncode == EXIT_REFUSED
    assert "is already mounted from device" in result.stderr
    assert mounted_source(mount_point) == first.device
    # Refused before touching anything: the other volume is not formatted, fstab unchanged.
    assert second.probe("TYPE") == ""
    assert Path(env["FSTAB"]).read_text() == fstab_before


def fs_size_bytes(mount_point: Path) -> int:
    stats = os.statvfs(mount_point)
    return stats.f_blocks * stats.f_frsize


def test_a_grown_volume_grows_its_filesystem_online_and_keeps_its_data(
    make_volume, mount_point, env
):
    """EBS grows the device when volumeSizeGb (or the models) grow; ext4 stays at its old
    size until resized (issue 9, defect 5). The next start grows it while mounted."""
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    (mount_point / "weights.gguf").write_bytes(b"GGUF" + b"\x02" * 8192)
    small = fs_size_bytes(mount_point)
    assert small <= SIZE

    run("umount", str(mount_point))  # a reboot: the volume is prepared before it is mounted
    with volume.image.open("r+b") as handle:
        handle.truncate(2 * SIZE)
    run("losetup", "--set-capacity", volume.device)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert f"growing the filesystem on {volume.device}" in result.stdout
    grown = fs_size_bytes(mount_point)
    assert grown > small + SIZE * 0.9, (small, grown)
    assert (mount_point / "weights.gguf").read_bytes() == b"GGUF" + b"\x02" * 8192

    again = prepare(volume.device, mount_point, env)
    assert again.returncode == 0 and "growing" not in again.stdout, "nothing left to grow"


def test_a_volume_grown_while_mounted_is_grown_online_or_reported(make_volume, mount_point, env):
    """A mounted volume grows online with resize2fs. Where the kernel refuses the resize
    (this sandbox denies the ioctl; EC2 hosts do not), the start still succeeds, the
    data stays, and the log says it keeps its size until prepared unmounted."""
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    small = fs_size_bytes(mount_point)
    with volume.image.open("r+b") as handle:
        handle.truncate(2 * SIZE)
    run("losetup", "--set-capacity", volume.device)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert f"growing the mounted filesystem on {volume.device}" in result.stdout
    grown = fs_size_bytes(mount_point)
    if grown == small:
        assert "WARNING: could not grow the filesystem online" in result.stdout
    else:
        assert grown > small + SIZE * 0.9
    assert mounted_source(mount_point) == volume.device


MARKER = b"LOCALAI-PREPARE-VOLUME-FORMAT-IN-PROGRESS"


def test_a_volume_the_user_named_is_never_formatted(make_volume, mount_point, env):
    """localai:weightsVolumeId names a volume that should hold weights: blank means it is
    the wrong one, not one to format (issue 10)."""
    volume = make_volume()
    before = volume.digest()
    result = prepare(volume.device, mount_point, {**env, "PREPARE_VOLUME_NEVER_FORMAT": "1"})
    assert result.returncode == EXIT_REFUSED
    assert (
        "it is a volume you named (localai:weightsVolumeId): refusing to format it" in result.stderr
    )
    assert volume.digest() == before and mounts_under(mount_point) == []

    assert prepare(volume.device, mount_point, env).returncode == 0  # formatted normally
    (mount_point / "w.gguf").write_bytes(b"GGUF")
    run("umount", str(mount_point))
    kept = prepare(volume.device, mount_point, {**env, "PREPARE_VOLUME_NEVER_FORMAT": "1"})
    assert kept.returncode == 0, kept.stderr
    assert (mount_point / "w.gguf").read_bytes() == b"GGUF"


def test_an_interrupted_format_is_detected_and_redone(make_volume, mount_point, env):
    """A power cut during mkfs left a volume every later start refused (non-zero blocks,
    no superblock). Our marker says the volume was never mounted: format it again."""
    volume = make_volume()
    with volume.image.open("r+b") as handle:
        handle.seek(SIZE - 4096)
        handle.write(MARKER)
        handle.seek(8 * 1024 * 1024)
        handle.write(b"\xa5" * 65536)  # what a half-done mkfs leaves: tables, no superblock
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert (
        "holds an interrupted format of ours (marker present): formatting it again" in result.stdout
    )
    assert volume.probe("TYPE") == "ext4"
    assert mounted_source(mount_point) == volume.device
    assert MARKER not in volume.image.read_bytes(), "the marker is cleared before mounting"


def test_a_marker_with_someone_elses_filesystem_is_not_ours(make_volume, mount_point, env):
    volume = make_volume()
    run("mkfs.ext2", "-q", volume.device)
    with volume.image.open("r+b") as handle:
        handle.seek(SIZE - 4096)
        handle.write(MARKER)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == EXIT_REFUSED and "holds 'ext2', not ext4" in result.stderr


def test_a_fresh_filesystem_keeps_reserved_blocks_and_no_marker(make_volume, mount_point, env):
    """A full volume (a leftover .partial) must not stop root from cleaning up."""
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    info = run("dumpe2fs", "-h", volume.device).stdout
    reserved = int(re.search(r"^Reserved block count:\s+(\d+)", info, re.M).group(1))
    blocks = int(re.search(r"^Block count:\s+(\d+)", info, re.M).group(1))
    assert reserved == blocks // 100, "1% reserved (mkfs -m 1), not mkfs's default 5%"
    assert MARKER not in volume.image.read_bytes()


# -- guards: each one has a test that fails without it (scripts/mutation.sh runs the
#    hand-made mutants of scripts/mutation/localai-prepare-volume.sh.mutants against
#    this file) ---------------------------------------------------------------------------

EXIT_USAGE = 2


def check_only(tmp_path: Path, mount_point: str, env: dict[str, str], **extra: str):
    """Run against a device that never appears, without waiting for it: a run that
    passes every argument check ends in the device timeout (exit 3), not earlier."""
    missing = tmp_path / "missing-device"
    return prepare(str(missing), mount_point, {**env, "PREPARE_VOLUME_WAIT_S": "0", **extra})


def refused_before_anything(env, *volumes: Volume, digests: list[str]) -> None:
    assert Path(env["FSTAB"]).read_text() == UNRELATED_FSTAB
    assert [v.digest() for v in volumes] == digests


@pytest.mark.parametrize(
    "args",
    [(), ("/dev/loop0",), ("", "/var/lib/localai"), ("/dev/loop0", "/var/lib/localai", "extra")],
    ids=["none", "one", "empty-device", "three"],
)
def test_wrong_arguments_are_a_usage_error(env, args):
    result = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip() == (
        "localai-prepare-volume: error: usage: localai-prepare-volume DEVICE MOUNTPOINT"
    )
    assert Path(env["FSTAB"]).read_text() == UNRELATED_FSTAB


@pytest.mark.parametrize(
    "bad",
    ["", "relative/models", "models", "/", "//", "/var/lib/local ai", "/var/lib/local\tai",
     "/var/lib/local\\ai"],
)  # fmt: skip
def test_a_mount_point_that_is_not_a_plain_absolute_path_is_refused(env, tmp_path, bad):
    result = check_only(tmp_path, bad, env)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert "MOUNTPOINT must be an absolute path other than /, without spaces" in result.stderr
    assert result.stdout == ""


# Every directory the script refuses to mount over, written out here (not read from the
# script), each one tried.
SYSTEM_DIRECTORIES = [
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr",
    "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp",
]  # fmt: skip
SYSTEM_SUBTREES = [
    "/bin/x", "/boot/efi", "/dev/shm", "/etc/localai", "/lib/modules", "/lib32/x", "/lib64/x",
    "/libx32/x", "/proc/1", "/sbin/x", "/sys/fs", "/usr/local/lib/localai",
]  # fmt: skip


@pytest.mark.parametrize("system", SYSTEM_DIRECTORIES + SYSTEM_SUBTREES + ["/etc/", "/usr//"])
def test_a_system_directory_is_never_a_mount_point(env, tmp_path, system):
    """Refused before the device is even looked for (the device here never appears: a
    mount point that passed would end in the device timeout, exit 3, instead)."""
    result = check_only(tmp_path, system, env)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert f"MOUNTPOINT '{system}' is (or resolves to) the system path" in result.stderr
    assert result.stdout == ""


def test_a_system_directory_is_refused_before_the_volume_is_touched(make_volume, env):
    volume = make_volume()
    before = volume.digest()
    result = prepare(volume.device, "/var/lib", env)
    assert result.returncode == EXIT_USAGE
    refused_before_anything(env, volume, digests=[before])
    assert volume.probe("TYPE") == ""


def test_a_system_directory_reached_through_a_symlink_or_dotdot_is_refused(env, tmp_path):
    link = tmp_path / "models-link"
    link.symlink_to("/etc")
    up_to_root = "/".join([str(tmp_path)] + [".."] * (len(tmp_path.parts) - 1))
    for sneaky in (str(link), f"{up_to_root}/usr/lib", "/var/lib/localai/../../log"):
        result = check_only(tmp_path, sneaky, env)
        assert result.returncode == EXIT_USAGE, (sneaky, result.stdout + result.stderr)
        assert "is (or resolves to) the system path" in result.stderr


@pytest.mark.parametrize("allowed", ["/var/lib/localai", "/mnt/models", "/srv/localai", "/etcx"])
def test_directories_beside_the_system_ones_are_accepted(env, tmp_path, allowed):
    """The other side of the list: these pass the checks and go on to wait for the device
    (which never appears here, so the run ends in the device timeout)."""
    result = check_only(tmp_path, allowed, env)
    assert result.returncode == EXIT_TIMEOUT, result.stderr
    assert f"waiting up to 0s for {tmp_path / 'missing-device'}" in result.stdout


@pytest.mark.parametrize("variable", ["PREPARE_VOLUME_WAIT_S", "PREPARE_VOLUME_LOCK_WAIT_S"])
@pytest.mark.parametrize("value", ["ten", "1.5", "-1", "5s"])
def test_waits_must_be_whole_seconds(env, tmp_path, variable, value):
    result = check_only(tmp_path, "/var/lib/localai", env, **{variable: value})
    assert result.returncode == EXIT_USAGE
    assert f"{variable} must be whole seconds: '{value}'" in result.stderr
    assert result.stdout == ""


def test_a_trailing_slash_names_the_same_mount_point(make_volume, mount_point, env):
    volume = make_volume()
    result = prepare(volume.device, f"{mount_point}//", env)
    assert result.returncode == 0, result.stderr
    assert fstab_lines_for(mount_point, env) == [
        f"UUID={volume.probe('UUID')} {mount_point} ext4 "
        "defaults,nofail,x-systemd.device-timeout=300s 0 2"
    ]
    assert result.stdout.splitlines()[-1] == f"localai-prepare-volume: ready: {mount_point}"


def test_a_run_waits_for_the_lock_and_touches_nothing_while_another_holds_it(
    make_volume, mount_point, env
):
    volume = make_volume()
    before = volume.digest()
    with held_lock(env["PREPARE_VOLUME_LOCK"]):
        started = time.monotonic()
        result = prepare(volume.device, mount_point, {**env, "PREPARE_VOLUME_LOCK_WAIT_S": "2"})
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert (
        f"another localai-prepare-volume still holds {env['PREPARE_VOLUME_LOCK']} after 2s; "
        "nothing was touched"
    ) in result.stderr
    assert 1.5 <= elapsed < 10
    refused_before_anything(env, volume, digests=[before])
    assert mounts_under(mount_point) == []
    # Released: the same run now goes through.
    assert prepare(volume.device, mount_point, env).returncode == 0


def test_concurrent_runs_format_once_and_mount_once(make_volume, mount_point, env):
    volume = make_volume()
    runs = [
        subprocess.Popen(
            ["bash", str(SCRIPT), volume.device, str(mount_point)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run_.communicate(timeout=120) for run_ in runs]
    assert [run_.returncode for run_ in runs] == [0, 0, 0], outputs
    stdout = "".join(out for out, _err in outputs)
    assert stdout.count("is blank: creating ext4") == 1
    assert stdout.count("already mounted at") == 2
    assert len(fstab_lines_for(mount_point, env)) == 1
    assert mounts_under(mount_point) == [str(mount_point)]


def fake_tool(tmp_path: Path, name: str, body: str) -> dict[str, str]:
    """A PATH entry whose NAME runs BODY (sh) instead of the real tool."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_mkfs_that_reports_success_but_leaves_no_ext4_is_caught(
    make_volume, mount_point, env, tmp_path
):
    volume = make_volume()
    result = prepare(
        volume.device, mount_point, {**env, **fake_tool(tmp_path, "mkfs.ext4", "exit 0")}
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"localai-prepare-volume: error: no ext4 filesystem found on {volume.device} after mkfs.ext4"
    )
    assert fstab_lines_for(mount_point, env) == []
    assert mounts_under(mount_point) == []
    # The marker stays: the next run knows the format never finished and redoes it.
    marker = b"LOCALAI-PREPARE-VOLUME-FORMAT-IN-PROGRESS"
    assert volume.image.read_bytes()[SIZE - 4096 : SIZE - 4096 + len(marker)] == marker
    again = prepare(volume.device, mount_point, env)
    assert again.returncode == 0, again.stderr
    assert "interrupted format of ours" in again.stdout


def test_a_mount_that_reports_success_but_mounts_nothing_is_caught(
    make_volume, mount_point, env, tmp_path
):
    volume = make_volume()
    result = prepare(volume.device, mount_point, {**env, **fake_tool(tmp_path, "mount", "exit 0")})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"localai-prepare-volume: error: {mount_point} is not backed by {volume.device} after mount"
    )
    assert "ready:" not in result.stdout
    assert mounts_under(mount_point) == []


def test_the_new_fstab_keeps_the_old_ones_mode(make_volume, mount_point, env):
    fstab = Path(env["FSTAB"])
    fstab.chmod(0o644)
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    assert fstab.stat().st_mode & 0o777 == 0o644


def test_a_device_under_8_mib_is_never_formatted(make_volume, mount_point, env):
    volume = make_volume(8 * 1024 * 1024 - 512 * 1024)  # 7.5 MiB, blank
    before = volume.digest()
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == EXIT_REFUSED
    assert (
        f"{volume.device} is only {8 * 1024 * 1024 - 512 * 1024} bytes; refusing to format it"
        in (result.stderr)
    )
    refused_before_anything(env, volume, digests=[before])
    assert prepare(make_volume(8 * 1024 * 1024).device, mount_point, env).returncode == 0


def test_a_signature_only_wipefs_reports_is_never_formatted(
    make_volume, mount_point, env, tmp_path
):
    """wipefs is asked as well as blkid (it lists every signature, not only the first):
    here it reports one that blkid -p did not."""
    volume = make_volume()
    before = volume.digest()
    fake = fake_tool(tmp_path, "wipefs", "echo 'linux_raid_member 0x1000'")
    result = prepare(volume.device, mount_point, {**env, **fake})
    assert result.returncode == EXIT_REFUSED
    assert (
        f"{volume.device} is not blank (wipefs: linux_raid_member 0x1000); refusing to format it"
        in result.stderr
    )
    refused_before_anything(env, volume, digests=[before])
    failing = fake_tool(tmp_path, "wipefs", "exit 1")
    result = prepare(volume.device, mount_point, {**env, **failing})
    assert result.returncode == 1
    assert f"wipefs cannot read {volume.device}" in result.stderr
    refused_before_anything(env, volume, digests=[before])


def test_a_marker_with_someone_elses_ext4_keeps_their_data(make_volume, mount_point, env):
    """Our marker with an ext4 under another label is not an interrupted format of ours:
    the filesystem and its files are kept."""
    volume = make_volume()
    run("mkfs.ext4", "-q", "-F", "-L", "their-data", volume.device, "32M")
    uuid = volume.probe("UUID")
    with volume.image.open("r+b") as handle:
        handle.seek(SIZE - 4096)
        handle.write(MARKER)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert "interrupted format" not in result.stdout
    assert "already holds an ext4 filesystem: keeping its data" in result.stdout
    assert (volume.probe("UUID"), volume.probe("LABEL")) == (uuid, "their-data")


def test_an_ambivalent_probe_is_refused_as_such(make_volume, mount_point, env):
    """Two filesystems' signatures (ext4 at 1 KiB, btrfs at 64 KiB): blkid -p exits 8."""
    volume = make_volume()
    run("mkfs.ext4", "-q", "-F", volume.device)
    with volume.image.open("r+b") as handle:
        handle.seek(65536 + 64)
        handle.write(b"_BHRfS_M")
    run("blockdev", "--flushbufs", volume.device, check=False)
    before = volume.digest()
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == EXIT_REFUSED
    assert (
        f"blkid cannot identify {volume.device} unambiguously (status 8); refusing to touch it"
        in result.stderr
    )
    refused_before_anything(env, volume, digests=[before])


def test_an_ext4_without_a_uuid_is_not_written_into_fstab(make_volume, mount_point, env):
    volume = make_volume()
    run("mkfs.ext4", "-q", "-F", volume.device)
    run("tune2fs", "-U", "clear", volume.device)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 1
    assert f"cannot read the filesystem UUID of {volume.device} ('')" in result.stderr
    assert Path(env["FSTAB"]).read_text() == UNRELATED_FSTAB
    assert mounts_under(mount_point) == []


# --- issue 18, items 13 and 19 --------------------------------------------------------------


def test_the_device_is_mounted_itself_not_through_the_fstab_uuid(
    make_volume, mount_point, env, tmp_path
):
    """Right after mkfs, `mount --fstab` by UUID with nofail exited 0 and mounted nothing
    while udev had no by-uuid link yet (item 13)."""
    volume = make_volume()
    lazy_uuid = fake_tool(
        tmp_path,
        "mount",
        'for a in "$@"; do [ "$a" = --fstab ] && exit 0; done; exec /usr/bin/mount "$@"',
    )
    result = prepare(volume.device, mount_point, {**env, **lazy_uuid})
    assert result.returncode == 0, result.stderr
    assert mounted_source(mount_point) == volume.device
    assert len(fstab_lines_for(mount_point, env)) == 1, "the fstab line is still written"


def duplicate_a_block(volume: Volume, tmp_path: Path) -> None:
    """What e2fsck -p will not repair (as a power cut during a resize can leave): two files
    claiming one block."""
    data = tmp_path / "data.txt"
    data.write_text("weights\n")
    for name in ("a", "b"):
        run("debugfs", "-w", "-R", f"write {data} {name}", volume.device)
    block = run("debugfs", "-R", "bmap a 0", volume.device).stdout.strip()
    run("debugfs", "-w", "-R", f"sif b block[5] {block}", volume.device)  # b's extent -> a's
    assert run("e2fsck", "-f", "-n", volume.device, check=False).returncode & 4


def test_an_offline_grow_repairs_what_e2fsck_p_leaves_on_our_filesystem(
    make_volume, mount_point, env, tmp_path
):
    """After a power cut during the offline grow, `e2fsck -f -p` refused, and so did every
    later start (4 of 19 cuts, item 19): on our own filesystem, -y repairs it, logged."""
    volume = make_volume()
    assert prepare(volume.device, mount_point, env).returncode == 0
    (mount_point / "weights.gguf").write_bytes(b"GGUF" + b"\x03" * 8192)
    run("umount", str(mount_point))
    duplicate_a_block(volume, tmp_path)
    with volume.image.open("r+b") as handle:
        handle.truncate(2 * SIZE)
    run("losetup", "--set-capacity", volume.device)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 0, result.stderr
    assert "WARNING: e2fsck -p left problems on" in result.stdout
    assert "e2fsck -y repaired" in result.stdout
    assert fs_size_bytes(mount_point) > SIZE, "and the grow went on"
    assert (mount_point / "weights.gguf").read_bytes() == b"GGUF" + b"\x03" * 8192


def test_someone_elses_filesystem_is_not_repaired_with_y(make_volume, mount_point, env, tmp_path):
    volume = make_volume()
    run("mkfs.ext4", "-q", "-F", "-L", "their-data", volume.device, f"{SIZE // 2048}k")
    duplicate_a_block(volume, tmp_path)
    with volume.image.open("r+b") as handle:
        handle.truncate(2 * SIZE)
    run("losetup", "--set-capacity", volume.device)
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 1
    assert "it is not our filesystem ('localai-models'); check it by hand" in result.stderr
    assert "e2fsck -y" not in result.stdout and mounts_under(mount_point) == []
    assert run("e2fsck", "-f", "-n", volume.device, check=False).returncode & 4, "left as found"


def test_data_only_beyond_the_first_64_mib_is_never_formatted(make_volume, mount_point, env):
    """Only the first 64 MiB and the last MiB were read: a volume with data in between, and
    no signature, was formatted (issue 18, item 20). A new volume is read whole, once."""
    volume = make_volume(256 * 1024 * 1024)
    with volume.image.open("r+b") as handle:
        handle.seek(128 * 1024 * 1024)
        handle.write(b"someone's data, no filesystem signature")
    before = volume.digest()
    result = prepare(volume.device, mount_point, env)
    assert result.returncode == 4
    assert f"holds data at byte {128 * 1024 * 1024 + 1} of {256 * 1024 * 1024}" in result.stderr
    assert volume.digest() == before and mounts_under(mount_point) == []


def test_an_unreadable_volume_is_not_taken_for_a_blank_one(make_volume, mount_point, env, tmp_path):
    volume = make_volume()
    failing = fake_tool(tmp_path, "cmp", "echo 'cmp: read error' >&2; exit 2")
    result = prepare(volume.device, mount_point, {**env, **failing})
    assert result.returncode == 1
    assert "cannot read all of" in result.stderr and "nothing was formatted" in result.stderr
    assert volume.probe("TYPE") == ""
