"""The files we ship (units, drop-ins, scripts) agree with what the Python renders for them.

Read from components/aws/bootstrap/files/ on disk, never through the module's constants:
a path or key changed on one side only (say the conf path in cloud_init.py but not in
the units) must fail here, which a test that imports the constant cannot notice.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.aws.bootstrap.cloud_init import compact_unit, decode_write_file, render_user_data
from tests.components.aws.bootstrap.cloud_init_support import (
    FILES_DIR,
    fleet_spec,
    make_spec,
    runcmd_steps,
)

UNIT_FILES = sorted(
    p for p in FILES_DIR.iterdir() if p.suffix in (".service", ".timer") or p.suffix == ".conf"
)
SCRIPT_FILES = sorted(FILES_DIR.glob("*.sh"))
FLEET_ONLY = {"localai-lifecycle.sh", "localai-host-profile.sh", "localai-warmup-lifecycle.conf",
              "localai-lifecycle-heartbeat.service", "localai-lifecycle-heartbeat.timer"}  # fmt: skip


def rendered(fleet: bool) -> tuple[dict[str, str], dict[str, str], list]:
    """(path -> content, path -> permissions, runcmd) of the user data."""
    # The fleet's agent files too (its hosts do not get them yet: the user data is full).
    spec = fleet_spec(metrics_namespace="LocalAI/localai-prod") if fleet else make_spec(gpu=True)
    config = yaml.safe_load(render_user_data(spec))
    files = {e["path"]: decode_write_file(e) for e in config["write_files"]}
    modes = {e["path"]: e.get("permissions", "0644") for e in config["write_files"]}
    return files, modes, runcmd_steps(config)


def conf_of(files: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The single host's settings file, found by its content (it sets the mount point)."""
    [(path, text)] = [(p, t) for p, t in files.items() if "\nLOCALAI_MOUNT_POINT=" in f"\n{t}"]
    return path, dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def unit_lines(path: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def installed_as(files: dict[str, str], name: str) -> list[str]:
    return [p for p in files if Path(p).name == name]


def test_the_list_of_shipped_files_is_what_this_test_expects():
    names = {p.name for p in FILES_DIR.iterdir()}
    assert names >= FLEET_ONLY
    assert {p.name for p in UNIT_FILES} | {p.name for p in SCRIPT_FILES} == names


@pytest.mark.parametrize("unit", UNIT_FILES, ids=lambda p: p.name)
def test_every_unit_reads_the_settings_file_the_python_writes(unit: Path):
    single_files, _, _ = rendered(fleet=False)
    conf_path, _ = conf_of(single_files)
    for value in unit_lines(unit, "EnvironmentFile"):
        assert value.lstrip("-") == conf_path, unit.name
    if unit.name in FLEET_ONLY or unit_lines(unit, "EnvironmentFile"):
        # A fleet host writes that file at boot: its profile script writes exactly there.
        profile = (FILES_DIR / "localai-host-profile.sh").read_text()
        assert f"conf=${{LOCALAI_CONF:-{conf_path}}}" in profile


@pytest.mark.parametrize("fleet", [False, True], ids=["host", "fleet"])
def test_every_command_a_unit_runs_is_installed_executable(fleet: bool):
    files, modes, _ = rendered(fleet)
    units = [u for u in UNIT_FILES if fleet or u.name not in FLEET_ONLY]
    checked = 0
    for unit in units:
        installed = installed_as(files, unit.name) or [
            p for p, content in files.items() if content == compact_unit(unit.read_text())
        ]  # a drop-in is installed under its unit's .d/ directory
        assert installed, f"{unit.name} is not installed"
        for key in ("ExecStart", "ExecStartPre", "ExecStop", "ExecStopPost"):
            for command in unit_lines(unit, key):
                program = command.lstrip("-+!@").split()[0]
                if program.startswith("/usr/local/"):
                    assert program in files, (unit.name, program)
                    assert modes[program] == "0755", program
                    checked += 1
                else:
                    assert program.startswith(("/usr/bin/", "/bin/")), (unit.name, program)
    assert checked >= (7 if fleet else 5)


@pytest.mark.parametrize("fleet", [False, True], ids=["host", "fleet"])
def test_every_setting_a_unit_expands_is_in_the_settings_file(fleet: bool):
    files, _, _ = rendered(False)
    _, conf = conf_of(files)
    expanded = set()
    for unit in UNIT_FILES:
        expanded |= set(re.findall(r"\$\{(\w+)\}", unit.read_text()))
    assert expanded == {"LOCALAI_VOLUME_DEVICE", "LOCALAI_MOUNT_POINT"}
    assert expanded <= set(conf)
    if fleet:
        # The fleet profile adds exactly what the base conf leaves out.
        profile = (FILES_DIR / "localai-host-profile.sh").read_text()
        assert "LOCALAI_VOLUME_DEVICE=" in profile


def test_every_timer_starts_a_shipped_service():
    for timer in (u for u in UNIT_FILES if u.suffix == ".timer"):
        [unit] = unit_lines(timer, "Unit") or [timer.with_suffix(".service").name]
        assert (FILES_DIR / unit).is_file(), timer.name


@pytest.mark.parametrize("fleet", [False, True], ids=["host", "fleet"])
def test_every_unit_the_runcmd_enables_is_installed(fleet: bool):
    files, _, runcmd = rendered(fleet)
    installed = {Path(p).name for p in files if p.startswith("/etc/systemd/system/")}
    enabled = [
        arg
        for command in runcmd
        if command[:2] == ["systemctl", "enable"]
        for arg in command[2:]
        if not arg.startswith("-")
    ]
    assert enabled, runcmd
    for name in enabled:
        assert name == "docker.service" or name in installed, name


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda p: p.name)
def test_every_setting_a_script_reads_without_a_default_is_in_the_settings_file(script: Path):
    """``$LOCALAI_X`` with no ``:-default`` must come from the conf (or the script sets it)."""
    files, _, _ = rendered(False)
    _, conf = conf_of(files)
    text = script.read_text()
    used = set(re.findall(r"\$\{?(LOCALAI_[A-Z0-9_]+)(?![A-Z0-9_]|:-|-)", text))
    assigned = set(
        re.findall(r"^\s*(?:export\s+|local\s+|readonly\s+)?(LOCALAI_[A-Z0-9_]+)=", text, re.M)
    )
    defaulted = set(re.findall(r"\$\{(LOCALAI_[A-Z0-9_]+):?-", text))
    fleet_only = {"LOCALAI_VOLUME_DEVICE"} if script.name in FLEET_ONLY else set()
    missing = used - assigned - defaulted - set(conf) - fleet_only
    assert missing == set(), f"{script.name} reads {sorted(missing)}, which no conf line sets"
