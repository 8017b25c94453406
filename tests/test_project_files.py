"""The project's own files agree with the code: Pulumi.yaml, README, CI, stacks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic.alias_generators import to_camel

from components.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_KEYS = {to_camel(name) for name in Settings.model_fields}


def test_pulumi_yaml_declares_every_settings_key_without_defaults() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "localai"
    assert project["runtime"]["name"] == "python"
    assert project["stackConfigDir"] == "stacks"
    declared = project["config"]
    assert set(declared) == SETTINGS_KEYS
    assert all("default" not in spec for spec in declared.values()), (
        "defaults live in components/settings.py only"
    )
    assert declared["apiKey"]["secret"] is True


def test_readme_configuration_table_lists_every_key() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-zA-Z]+)`", section))
    missing = SETTINGS_KEYS - documented
    assert not missing, f"README configuration table lacks {sorted(missing)}"


def test_quick_start_is_two_commands_and_ci_runs_the_same_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["./scripts/deploy.sh", "./scripts/test.sh"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), f"{command} is not executable"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def test_stack_files_only_use_known_keys() -> None:
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        config = yaml.safe_load(path.read_text())["config"]
        ours = {k.split(":", 1)[1] for k in config if k.startswith("localai:")}
        assert ours <= SETTINGS_KEYS, f"{path.name}: unknown {sorted(ours - SETTINGS_KEYS)}"


def _layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_component_module_and_package() -> None:
    block = _layout_block()
    named = set(re.findall(r"[\w.]+\.py", block))
    modules = {
        p.name for p in (ROOT / "components").rglob("*.py") if p.name not in {"__init__.py"}
    } - {"__main__.py"}
    assert modules - named == set(), f"README layout omits {sorted(modules - named)}"
    packages = {p.parent.name for p in (ROOT / "components").rglob("__init__.py")} - {"components"}
    missing = {p for p in packages if f"{p}/" not in block}
    assert not missing, f"README layout omits the packages {sorted(missing)}"


def test_readme_layout_names_only_files_that_exist() -> None:
    named = set(re.findall(r"[\w.-]+\.(?:py|sh|json|release)\b", _layout_block()))
    existing = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts}
    assert named - existing == set(), (
        f"README layout names missing files {sorted(named - existing)}"
    )


def test_bootstrap_files_exist_once() -> None:
    """The EC2 bootstrap's scripts and units live in components/aws/bootstrap/files only:
    a second copy drifts, and tests could read the wrong one."""
    names = [p.name for p in (ROOT / "components").rglob("localai*.s[he]*")]
    copies = {n: names.count(n) for n in names if names.count(n) > 1}
    assert copies == {}, f"bootstrap files found more than once under components/: {copies}"


def _collect_e2e(env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LOCALAI_E2E_AWS"}
    if env_value is not None:
        env["LOCALAI_E2E_AWS"] = env_value
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/e2e"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_real_aws_test_is_not_collected_unless_asked_for() -> None:
    quiet = _collect_e2e(None)
    assert "no tests collected" in quiet.stdout, quiet.stdout
    asked = _collect_e2e("1")
    assert "tests/e2e/test_aws_dev_stack.py::test_day_two_on_real_aws" in asked.stdout, (
        asked.stdout + asked.stderr
    )
