"""scripts/coldstart-report.sh turns the lines the real localai-timeline script writes into
the boot-timeline table (issue 12, item 3). pulumi and aws are stand-ins on PATH; the lines
are produced by the shipped script, not written by hand."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMELINE = ROOT / "components" / "aws" / "bootstrap" / "files" / "localai-timeline.sh"
REPORT = ROOT / "scripts" / "coldstart-report.sh"


def timeline_line(tmp_path: Path, boot: str, uptime: str, *args: str) -> str:
    (tmp_path / "uptime").write_text(f"{uptime} 1.00\n")
    (tmp_path / "boot_id").write_text(boot + "\n")
    done = subprocess.run(
        ["bash", str(TIMELINE), *args],
        env={"PATH": os.environ["PATH"], "LOCALAI_UPTIME_FILE": str(tmp_path / "uptime"),
             "LOCALAI_BOOT_ID_FILE": str(tmp_path / "boot_id")},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stderr.strip()


def test_the_report_prints_the_latest_boots_phases_with_their_deltas(tmp_path: Path) -> None:
    old = [timeline_line(tmp_path, "boot-1", "5.0", "volume_ready")]
    new = [
        timeline_line(tmp_path, "boot-2", "12.5", "volume_ready"),
        timeline_line(tmp_path, "boot-2", "20.0", "docker_ready"),
        timeline_line(
            tmp_path, "boot-2", "95.5", "image_present", "source=pulled", "bytes=1500000000"
        ),
        timeline_line(
            tmp_path,
            "boot-2",
            "140.0",
            "weights_present",
            "source=fetched",
            "bytes=2393231072",
            "mb_per_s=20.5",
        ),
        timeline_line(tmp_path, "boot-2", "150.2", "first_token", "seconds=3"),
    ]
    assert new[2] == (
        "localai-boot: boot=boot-2 phase=image_present t=95.5 source=pulled bytes=1500000000"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    outputs = {"logGroup": "/localai/localai-dev", "instanceId": "i-0abc", "region": "us-east-1"}
    (bin_dir / "pulumi").write_text(
        "#!/bin/sh\n"
        + "".join(f'[ "$5" = {k} ] && echo {v}\n' for k, v in outputs.items())
        + "exit 0\n"
    )
    (tmp_path / "events.txt").write_text("\t".join(old + new) + "\n")
    (bin_dir / "aws").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" > {tmp_path / "aws-args"}\ncat {tmp_path / "events.txt"}\n'
    )
    for tool in ("pulumi", "aws"):
        (bin_dir / tool).chmod(0o755)
    result = subprocess.run(
        ["bash", str(REPORT), "dev"], env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0] == "boot boot-2"
    assert rows[2].split() == ["volume_ready", "12.5", "12.5"]
    assert rows[4].split() == ["image_present", "95.5", "75.5", "source=pulled", "bytes=1500000000"]
    assert rows[6].split() == ["first_token", "150.2", "10.2", "seconds=3"]
    assert len(rows) == 7, "only the latest boot"
    args = (tmp_path / "aws-args").read_text()
    assert "--log-stream-names i-0abc/boot" in args and "--region us-east-1" in args


def test_a_bad_phase_or_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "uptime").write_text("1.0 1.0\n")
    (tmp_path / "boot_id").write_text("b\n")
    env = {"PATH": os.environ["PATH"], "LOCALAI_UPTIME_FILE": str(tmp_path / "uptime"),
           "LOCALAI_BOOT_ID_FILE": str(tmp_path / "boot_id")}  # fmt: skip
    for args in (["Bad-Phase"], ["ok", "x=a b"], ["ok", 'quote="x"']):
        done = subprocess.run(
            ["bash", str(TIMELINE), *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 2, args
