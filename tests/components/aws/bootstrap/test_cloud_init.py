"""The rendered #cloud-config: valid for cloud-init, complete, small enough, no secret."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import os
import random
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.aws.bootstrap import cloud_init
from components.aws.bootstrap.cloud_init import (
    CONF_PATH,
    EXTRA_ENV_PATH,
    MODEL_SRC_DIR,
    SCRIPTS,
    UNITS,
    USER_DATA_LIMIT_BYTES,
    compact_unit,
    render_user_data,
    render_user_data_base64,
)
from components.aws.bootstrap.metrics_agent import agent_config
from tests.components.aws.bootstrap.cloud_init_support import (
    DEFAULT_MODEL,
    FILES_DIR,
    KEY_PARAMETER,
    REPO_ROOT,
    SENTINEL_KEY,
    VOLUME_DEVICE,
    assert_same_code,
    decoded_files,
    fleet_spec,
    make_spec,
    model_set,
    runcmd_steps,
    skip_or_fail,
    write_files,
)
from tests.support import zopfli_cache

SCHEMA_NAME = "schema-cloud-config-v1.json"
DEFAULT_SCHEMA_PATH = REPO_ROOT / ".cache" / "cloud-init" / SCHEMA_NAME
ALL_CATALOG_MODELS = tuple(sorted(p.stem for p in (REPO_ROOT / "model_configs").glob("*.yaml")))

VARIANTS = {
    "cpu": {"gpu": False},
    "gpu": {"gpu": True},
    "gpu-two-models": {"gpu": True, "models": ("phi-3.5-mini-instruct", "llama-3.1-8b-instruct")},
}


@pytest.fixture(scope="module")
def schema() -> dict:
    path = Path(os.environ.get("CLOUD_INIT_SCHEMA", DEFAULT_SCHEMA_PATH))
    if not path.is_file():
        skip_or_fail(
            f"cloud-init schema not found at {path}: run scripts/fetch-cloud-init-schema.sh "
            "or set CLOUD_INIT_SCHEMA"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def schema_errors(schema: dict, config: object) -> list[str]:
    # cloud-init validates with a Draft 4 validator (cloudinit/config/schema.py).
    validator = jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(config)
    ]


def known_top_level_keys(schema: dict) -> set[str]:
    keys: set[str] = set()
    for definition in schema["$defs"].values():
        keys.update(definition.get("properties", {}))
    return keys


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def variant(request: pytest.FixtureRequest) -> tuple[str, cloud_init.BootstrapSpec, str]:
    spec = make_spec(**VARIANTS[request.param])
    return request.param, spec, render_user_data(spec)


# --- format and schema ------------------------------------------------------------------


def test_user_data_is_a_single_cloud_config_document(variant):
    _, _, document = variant
    assert document.startswith("#cloud-config\n")
    documents = list(yaml.safe_load_all(document))
    assert len(documents) == 1
    assert isinstance(documents[0], dict)
    assert "Content-Type: multipart" not in document


def test_user_data_validates_against_cloud_init_schema(variant, schema):
    _, _, document = variant
    config = yaml.safe_load(document)
    assert schema_errors(schema, config) == []
    # cloud-init 22.4's top level allows unknown keys: a typo ("runcmds") would be
    # silently ignored on the instance, so check the keys against the schema too.
    assert set(config) <= known_top_level_keys(schema)


def test_schema_check_rejects_a_broken_document(schema):
    """The validator is live: a misspelt write_files key and a bad runcmd are errors."""
    config = yaml.safe_load(render_user_data(make_spec()))
    config["write_files"][0]["permission"] = "0644"
    config["runcmd"].append({"not": "a command"})
    errors = schema_errors(schema, config)
    assert any("permission" in error for error in errors), errors
    assert any(error.startswith("runcmd/") for error in errors), errors
    assert "runcmds" not in known_top_level_keys(schema)


def test_gzip_base64_variant_is_the_same_document_verbatim(schema):
    # All four catalog models on one GPU host fit without the CloudWatch agent (about
    # 1.2 KB of gzip): localai:hostMetrics false.
    spec = make_spec(gpu=True, models=ALL_CATALOG_MODELS, metrics_namespace="")
    packed = base64.b64decode(render_user_data_base64(spec), validate=True)
    assert len(packed) <= USER_DATA_LIMIT_BYTES
    assert packed[:2] == b"\x1f\x8b"  # cloud-init recognises gzip user data by its magic
    assert packed[4:8] == b"\0\0\0\0", "gzip mtime must be 0 so the output is deterministic"
    document = gzip.decompress(packed).decode()
    assert document.startswith("#cloud-config\n")
    config = yaml.safe_load(document)
    assert schema_errors(schema, config) == []
    assert all("encoding" not in entry for entry in config["write_files"])
    assert document == render_user_data(spec)
    for path, name in UNITS.items():
        assert decoded_files(document)[path] == compact_unit((FILES_DIR / name).read_text())
    for path, name in SCRIPTS.items():
        assert_same_code((FILES_DIR / name).read_text(), decoded_files(document)[path], path)


# --- size -----------------------------------------------------------------------------


def test_user_data_fits_the_ec2_limit(variant):
    name, spec, _ = variant
    packed = base64.b64decode(render_user_data_base64(spec))
    assert len(packed) < USER_DATA_LIMIT_BYTES, name


def test_too_many_models_fail_with_a_clear_message_not_a_truncated_document():
    noise = random.Random(3)
    # Incompressible model configs, far beyond 16 KiB even gzipped.
    bulky = {
        f"m{i}.yaml": f"name: m{i}\ndescription: "
        + "".join(noise.choice("abcdefghijklmnop") for _ in range(6000))
        + "\n"
        for i in range(6)
    }
    spec = make_spec(cpu_models=bulky, default_model="m0")
    with pytest.raises(
        ValueError, match=r"gzipped cloud-init user data is \d+ bytes; EC2 allows 16384"
    ):
        render_user_data_base64(spec)


def test_rendering_is_deterministic():
    spec = make_spec(gpu=True)
    assert render_user_data(spec) == render_user_data(spec)
    assert render_user_data_base64(spec) == render_user_data_base64(spec)


def test_zopfli_itself_is_deterministic_and_the_tests_cache_returns_its_bytes(
    tmp_path, monkeypatch
):
    """The tests remember zopfli's output (tests/support/zopfli_cache.py); that is only
    sound because zopfli gives the same bytes for the same input, checked here with the
    real compressor, and because the cache hands back exactly those bytes."""
    document = render_user_data(make_spec(gpu=True)).encode()
    real = zopfli_cache._real_compress
    first = real(document)
    assert real(document) == first
    assert gzip.decompress(first) == document
    monkeypatch.setattr(zopfli_cache, "CACHE_DIR", tmp_path)
    assert zopfli_cache.compress(document) == first  # computed, then stored
    assert list(tmp_path.iterdir()) == [tmp_path / f"{zopfli_cache.cache_key(document, (), {})}.gz"]
    assert zopfli_cache.compress(document) == first  # read back
    assert zopfli_cache.cache_key(document, (), {"numiterations": 1}) != zopfli_cache.cache_key(
        document, (), {}
    ), "options are part of the key"
    assert zopfli_cache.cache_key(document + b" ", (), {}) != zopfli_cache.cache_key(
        document, (), {}
    )


# --- secret ---------------------------------------------------------------------------


def test_api_key_never_in_user_data_only_the_parameter_name(variant):
    _, spec, document = variant
    decoded = "\n".join(decoded_files(document).values())
    gunzipped = gzip.decompress(base64.b64decode(render_user_data_base64(spec))).decode()
    for text in (document, decoded, gunzipped):
        assert SENTINEL_KEY not in text
    assert f"LOCALAI_API_KEY_PARAMETER={KEY_PARAMETER}\n" in decoded_files(document)[CONF_PATH]


@pytest.mark.parametrize("name", ["LOCALAI_API_KEY", "API_KEY"])
def test_extra_env_cannot_carry_the_api_key(name):
    with pytest.raises(ValueError, match=rf"must not set {name}"):
        render_user_data(make_spec(extra_env={name: SENTINEL_KEY}))


# --- content ----------------------------------------------------------------------------


def test_embedded_scripts_and_units_equal_the_files_in_components_files(variant):
    _, _, document = variant
    files = decoded_files(document)
    entries = write_files(document)
    for path, name in SCRIPTS.items():
        assert_same_code((FILES_DIR / name).read_text(encoding="utf-8"), files[path], path)
        assert entries[path]["permissions"] == "0755"
    for path, name in UNITS.items():
        assert files[path] == compact_unit((FILES_DIR / name).read_text(encoding="utf-8")), path
        assert entries[path].get("permissions", "0644") == "0644"
    for path, name in cloud_init.METRICS_AGENT_SCRIPTS.items():
        assert_same_code((FILES_DIR / name).read_text(encoding="utf-8"), files[path], path)
        assert entries[path]["permissions"] == "0755"
    for path, name in cloud_init.METRICS_AGENT_UNITS.items():
        assert files[path] == compact_unit((FILES_DIR / name).read_text(encoding="utf-8")), path
    fleet_only = {*cloud_init.FLEET_SCRIPTS.values(), *cloud_init.FLEET_UNITS.values()}
    assert not fleet_only & set(files), "fleet files belong to fleet hosts only"
    metrics = {*cloud_init.METRICS_AGENT_SCRIPTS.values(), *cloud_init.METRICS_AGENT_UNITS.values()}
    shipped = {
        Path(name).name for name in {*SCRIPTS.values(), *UNITS.values(), *fleet_only, *metrics}
    }
    assert shipped == {
        p.name for p in FILES_DIR.iterdir() if p.suffix in {".sh", ".service", ".timer", ".conf"}
    }


def test_no_unit_depends_on_what_systemd_would_never_retry(variant):
    """Restart= does not apply when a Requires=/BindsTo=/RequiresMountsFor= dependency
    fails: a failed docker.io install or a late volume left localai.service failed for
    good (issue 9, defect 8). The unit checks both itself, at every start."""
    _, _spec, document = variant
    files = decoded_files(document)
    units = {
        path: text
        for path, text in files.items()
        if path.startswith("/etc/systemd/system/") and "/docker.service.d/" not in path
    }
    assert not [p for p in units if ".service.d/" in p], "no drop-ins for our units"
    for path, text in units.items():
        for key in ("Requires=", "BindsTo=", "RequiresMountsFor=", "Requisite="):
            assert not re.search(rf"^{key}", text, re.M), f"{path} has {key}"


def test_docker_is_installed_only_on_plain_ubuntu():
    cpu = yaml.safe_load(render_user_data(make_spec(gpu=False)))
    gpu = yaml.safe_load(render_user_data(make_spec(gpu=True)))
    assert "docker.io" in cpu["packages"]
    assert cpu["package_update"] is True
    assert ["systemctl", "enable", "--now", "docker.service"] in runcmd_steps(cpu)
    assert "packages" not in gpu
    assert not any("docker" in " ".join(command) for command in runcmd_steps(gpu))


def test_model_yamls_land_under_the_accelerator_directories(variant):
    _, spec, document = variant
    files = decoded_files(document)
    model_files = {path for path in files if path.startswith(MODEL_SRC_DIR + "/")}
    expected = {f"{MODEL_SRC_DIR}/cpu/{name}": text for name, text in spec.cpu_models.items()}
    if spec.gpu_capable:
        expected |= {f"{MODEL_SRC_DIR}/gpu/{name}": text for name, text in spec.gpu_models.items()}
    assert model_files == set(expected)
    for path, text in expected.items():
        assert files[path] == text
    if spec.gpu_capable:
        assert "gpu_layers: 99" in files[f"{MODEL_SRC_DIR}/gpu/phi-3.5-mini-instruct.yaml"]
        assert "gpu_layers: 0" in files[f"{MODEL_SRC_DIR}/cpu/phi-3.5-mini-instruct.yaml"]


def test_runcmd_prepares_the_volume_then_starts_the_units_without_blocking(variant):
    _, spec, document = variant
    runcmd = runcmd_steps(yaml.safe_load(document))
    prepare = runcmd[0]
    assert prepare[-3:] == [
        "/usr/local/sbin/localai-prepare-volume",
        VOLUME_DEVICE,
        spec.mount_point,
    ]
    assert prepare[:3] == [
        "env",
        f"PREPARE_VOLUME_WAIT_S={spec.volume_wait_s}",
        "PREPARE_VOLUME_NEVER_FORMAT=0",
    ]
    assert runcmd[1] == ["systemctl", "daemon-reload"]
    assert runcmd[-1] == [
        "systemctl",
        "enable",
        "--now",
        "--no-block",
        "localai.service",
        "localai-warmup.service",
        "localai-key-watch.timer",
        "localai-gpu-retry.timer",
        "localai-metrics-agent.service",
    ]


def test_weights_volume_is_not_handled_by_cloud_init_disk_modules(variant):
    _, _, document = variant
    config = yaml.safe_load(document)
    assert not {"fs_setup", "disk_setup", "mounts", "bootcmd"} & set(config)


def conf_values(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


def test_settings_file_carries_the_spec(variant):
    _, spec, document = variant
    files = decoded_files(document)
    values = conf_values(files[CONF_PATH])
    assert values["LOCALAI_VOLUME_DEVICE"] == spec.volume_device
    assert values["LOCALAI_MOUNT_POINT"] == spec.mount_point
    assert values["LOCALAI_PORT"] == str(spec.port)
    assert values["LOCALAI_CPU_IMAGE"] == spec.cpu_image
    assert values["LOCALAI_GPU_IMAGE"] == (spec.gpu_image if spec.gpu_capable else "")
    assert values["LOCALAI_GPU_CAPABLE"] == ("1" if spec.gpu_capable else "0")
    assert values["LOCALAI_REGION"] == spec.region
    assert values["LOCALAI_LOG_GROUP"] == spec.log_group
    assert values["LOCALAI_DEFAULT_MODEL"] == spec.default_model
    assert float(values["LOCALAI_CPUS"]) == spec.cpu_limit
    assert values["LOCALAI_MEMORY_MB"] == str(spec.memory_limit_mb)
    assert values["LOCALAI_THREADS"] == str(spec.threads)
    assert values["LOCALAI_PARALLEL_REQUESTS"] == str(spec.parallel_requests)
    assert values["LOCALAI_EXTRA_ENV_FILE"] == EXTRA_ENV_PATH
    extra = conf_values(files[EXTRA_ENV_PATH])
    assert extra == spec.extra_env


def test_settings_file_reads_the_same_in_bash(variant):
    """The scripts source the file; bash must see exactly the values Python wrote."""
    _, _, document = variant
    text = decoded_files(document)[CONF_PATH]
    expected = conf_values(text)
    script = f"set -eu\n{text}\n" + "".join(
        f"printf '%s=%s\\n' {name} \"${name}\"\n" for name in expected
    )
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env={}
    )
    assert conf_values(result.stdout) == expected


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"region": "Ireland"}, "not an AWS region"),
        ({"default_model": "gpt-4o"}, "is not among cpu_models"),
        ({"cpu_models": {}}, "cpu_models must contain at least one"),
        ({"gpu_models": {}, "gpu_capable": True}, "gpu_models must contain at least one"),
        ({"cpu_models": {"../x.yaml": "name: x\n"}}, "must look like 'my-model.yaml'"),
        ({"cpu_models": {"x.yaml": "- not a mapping\n"}}, "must be a LocalAI model config"),
        ({"mount_point": "/"}, "mount_point"),
        ({"mount_point": "/var/lib/localai/"}, "normalised absolute path"),
        ({"mount_point": "/var/lib/my models"}, "mount_point"),
        ({"volume_device": "nvme1n1"}, "volume_device"),
        ({"port": 0}, "port must be between 1 and 65535"),
        ({"memory_limit_mb": 0}, "memory_limit_mb"),
        ({"threads": 0}, "threads"),
        ({"parallel_requests": 0}, "parallel_requests"),
        ({"extra_env": {"THREADS": "8"}}, "must not set THREADS"),
        ({"extra_env": {"BAD-NAME": "1"}}, "not a valid environment variable name"),
        ({"extra_env": {"X": "a\nb"}}, "single line"),
        ({"log_group": "/localai/dev team"}, "LOCALAI_LOG_GROUP"),
        ({"cpu_image": "img$(reboot)"}, "LOCALAI_CPU_IMAGE"),
    ],
)
def test_bad_spec_is_rejected_naming_the_field(overrides, message):
    spec_kwargs = dict(overrides)
    gpu = bool(spec_kwargs.get("gpu_capable", False))
    spec = make_spec(gpu=gpu, **spec_kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        render_user_data(spec)


def test_cpu_only_host_needs_no_gpu_models():
    spec = make_spec(gpu=False, gpu_models={})
    assert f"{MODEL_SRC_DIR}/gpu/" not in render_user_data(spec)


def test_gpu_set_must_contain_the_default_model():
    spec = make_spec(gpu=True, gpu_models=model_set(("qwen2.5-0.5b-instruct",), 99))
    with pytest.raises(ValueError, match="is not among gpu_models"):
        render_user_data(spec)


def test_the_shared_scripts_and_the_manifest_are_installed_as_shipped(variant):
    _, spec, document = variant
    from components.aws.bootstrap.cloud_init import SHARED_SCRIPTS, WEIGHTS_MANIFEST_PATH

    files = decoded_files(document)
    entries = write_files(document)
    for path, source in SHARED_SCRIPTS.items():
        assert_same_code(source.read_text(encoding="utf-8"), files[path], str(path))
        assert entries[path]["permissions"] == "0755"
    assert files[WEIGHTS_MANIFEST_PATH] == spec.weights_manifest
    assert (
        f"\nLOCALAI_WEIGHTS_MANIFEST={WEIGHTS_MANIFEST_PATH}\n"
        in files["/etc/localai/localai.conf"]
    )


def test_docker_keeps_its_images_on_the_weights_volume_and_waits_for_it(variant):
    """A replacement host finds the image on the volume (issue 12, item 2); Docker must
    not start before the volume is mounted, or it would use the root disk."""
    _, spec, document = variant
    from components.aws.bootstrap.cloud_init import DOCKER_DROPIN_PATH

    dropin = decoded_files(document)[DOCKER_DROPIN_PATH]
    assert f"\nConditionPathIsMountPoint={spec.mount_point}\n" in dropin
    assert dropin.index("[Unit]") < dropin.index("ConditionPathIsMountPoint=")
    assert "Requires" not in dropin and "BindsTo" not in dropin


# --- validation at both sides of each limit (issue 13) -----------------------------------


@pytest.mark.parametrize(
    ("field", "refused", "accepted"),
    [
        ("port", 0, 1),
        ("port", 65536, 65535),
        ("cpu_limit", 0.0, 0.001),
        ("memory_limit_mb", 255, 256),
        ("threads", 0, 1),
        ("parallel_requests", 0, 1),
        ("volume_wait_s", 0, 1),
    ],
)
def test_each_number_is_refused_just_outside_its_limit_and_accepted_on_it(field, refused, accepted):
    with pytest.raises(ValueError, match=re.escape(f"{field} must ")):
        render_user_data(make_spec(**{field: refused}))
    assert render_user_data(make_spec(**{field: accepted})).startswith("#cloud-config\n")


@pytest.mark.parametrize("field", ["cpu_image", "gpu_image", "api_key_parameter"])
def test_each_required_text_must_not_be_empty(field):
    with pytest.raises(ValueError, match=f"^{field} must not be empty$"):
        render_user_data(make_spec(gpu=True, **{field: ""}))


@pytest.mark.parametrize(
    ("region", "ok"),
    [("us-east-1", True), ("ap-southeast-2", True), ("us-gov-west-1", True), ("eu-west", False),
     ("US-EAST-1", False), ("us-east-1 ", False), ("useast1", False)],
)  # fmt: skip
def test_regions(region, ok):
    if ok:
        assert f"LOCALAI_REGION={region}\n" in render_user_data(make_spec(region=region))
    else:
        with pytest.raises(ValueError, match="is not an AWS region name"):
            render_user_data(make_spec(region=region))


@pytest.mark.parametrize(
    ("mount_point", "ok"),
    [("/var/lib/localai", True), ("/x", True), ("/", False), ("var/lib/localai", False),
     ("/var/lib/../localai", False), ("//var/lib", False), ("/var/lib/localai/", False),
     ("/var/./lib", False)],
)  # fmt: skip
def test_the_mount_point_is_a_normalised_absolute_path_other_than_root(mount_point, ok):
    if ok:
        assert f"LOCALAI_MOUNT_POINT={mount_point}\n" in render_user_data(
            make_spec(mount_point=mount_point)
        )
    else:
        with pytest.raises(ValueError, match="mount_point"):
            render_user_data(make_spec(mount_point=mount_point))


@pytest.mark.parametrize(
    ("model", "ok"),
    [("phi-3.5-mini-instruct", True), ("bad model", False), ("x;reboot", False), ("", False)],
)
def test_the_default_model_name_is_plain(model, ok):
    spec = make_spec(default_model=model, cpu_models={"m.yaml": f"name: {model or 'x'}\n"})
    if ok:
        render_user_data(spec)
    else:
        with pytest.raises(ValueError, match="default_model"):
            render_user_data(spec)


def test_a_model_yaml_that_does_not_parse_is_named():
    with pytest.raises(ValueError, match=re.escape("cpu_models['m.yaml'] is not valid YAML")):
        render_user_data(make_spec(cpu_models={"m.yaml": "name: [unclosed\n"}))
    with pytest.raises(ValueError, match="must be a LocalAI model config with a name"):
        render_user_data(make_spec(cpu_models={"m.yaml": "name: 3\n"}))


def test_a_cpu_only_host_does_not_check_the_gpu_set():
    spec = make_spec(gpu=False, gpu_models={"m.yaml": "name: other\n"})
    assert "/gpu/" not in render_user_data(spec)


def test_every_reserved_container_variable_is_refused_in_extra_env():
    from components.serving import CONTAINER_ENV

    names = ["ADDRESS", "API_KEY", "HF_TOKEN", "LLAMACPP_PARALLEL", "LOCALAI_ADDRESS",
             "LOCALAI_API_KEY", "LOCALAI_MODELS_PATH", "LOCALAI_PARALLEL_REQUESTS",
             "LOCALAI_THREADS", "MODELS_PATH", "PARALLEL_REQUESTS", "THREADS"]  # fmt: skip
    assert set(names) <= CONTAINER_ENV
    for name in names:
        with pytest.raises(ValueError, match=f"must not set {name}:"):
            render_user_data(make_spec(extra_env={name: "1"}))


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_extra_env_values_are_single_lines(bad):
    with pytest.raises(ValueError, match="must be a single line"):
        render_user_data(make_spec(extra_env={"X": bad}))


def test_the_cpu_count_is_written_without_trailing_zeros():
    for value, text in ((3.5, "3.5"), (4.0, "4"), (0.125, "0.125"), (2.0004, "2"), (10.0, "10")):
        conf = decoded_files(render_user_data(make_spec(cpu_limit=value)))[CONF_PATH]
        assert f"\nLOCALAI_CPUS={text}\n" in conf


def test_extra_env_is_written_sorted_and_only_when_set():
    files = decoded_files(render_user_data(make_spec(extra_env={"B_VAR": "2", "A_VAR": "x y"})))
    assert (
        files[EXTRA_ENV_PATH]
        == "# Non-secret LocalAI env vars (docker --env-file).\nA_VAR=x y\nB_VAR=2\n"
    )
    plain = decoded_files(render_user_data(make_spec(extra_env={})))
    assert EXTRA_ENV_PATH not in plain
    assert "\nLOCALAI_EXTRA_ENV_FILE=\n" in plain[CONF_PATH]


def test_the_conf_holds_exactly_these_lines():
    spec = make_spec(
        hf_token_parameter="/localai/dev/hf-token", never_format=True, volume_wait_s=42
    )
    assert decoded_files(render_user_data(spec))[CONF_PATH] == (
        "# LocalAI host settings (non-secret; the key comes from SSM). From cloud-init.\n"
        f"LOCALAI_VOLUME_DEVICE={VOLUME_DEVICE}\n"
        "LOCALAI_MOUNT_POINT=/var/lib/localai\n"
        "PREPARE_VOLUME_WAIT_S=42\n"
        "PREPARE_VOLUME_NEVER_FORMAT=1\n"
        "LOCALAI_PORT=8080\n"
        "LOCALAI_CPU_IMAGE=localai/localai:v2.24.0-ffmpeg-core\n"
        "LOCALAI_GPU_IMAGE=\n"
        "LOCALAI_GPU_CAPABLE=0\n"
        "LOCALAI_INSTALL_DOCKER=1\n"
        f"LOCALAI_API_KEY_PARAMETER={KEY_PARAMETER}\n"
        "LOCALAI_REGION=eu-west-1\n"
        "LOCALAI_LOG_GROUP=/localai/dev\n"
        "LOCALAI_DEFAULT_MODEL=phi-3.5-mini-instruct\n"
        "LOCALAI_CPUS=3.5\n"
        "LOCALAI_MEMORY_MB=7168\n"
        "LOCALAI_THREADS=4\n"
        "LOCALAI_PARALLEL_REQUESTS=1\n"
        "LOCALAI_MODEL_SRC_DIR=/etc/localai/models\n"
        "LOCALAI_RUN_DIR=/run/localai\n"
        "LOCALAI_EXTRA_ENV_FILE=/etc/localai/extra.env\n"
        "LOCALAI_WEIGHTS_MANIFEST=/etc/localai/weights.tsv\n"
        "LOCALAI_HF_TOKEN_PARAMETER=/localai/dev/hf-token\n"
        "LOCALAI_KEEP_REMOVED_WEIGHTS=0\n"
    )


def test_the_runcmd_of_a_single_host_step_by_step():
    cpu = yaml.safe_load(render_user_data(make_spec(never_format=True, volume_wait_s=42)))
    assert cpu["package_update"] is True
    assert cpu["packages"] == ["docker.io", "curl"]
    assert runcmd_steps(cpu) == [
        ["env", "PREPARE_VOLUME_WAIT_S=42", "PREPARE_VOLUME_NEVER_FORMAT=1",
         "/usr/local/sbin/localai-prepare-volume", VOLUME_DEVICE, "/var/lib/localai"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "docker.service"],
        ["systemctl", "enable", "--now", "--no-block", "localai.service",
         "localai-warmup.service", "localai-key-watch.timer", "localai-gpu-retry.timer",
         "localai-metrics-agent.service"],
    ]  # fmt: skip
    gpu = yaml.safe_load(render_user_data(make_spec(gpu=True)))
    assert "packages" not in gpu and "package_update" not in gpu
    assert runcmd_steps(gpu)[0][1:3] == [
        "PREPARE_VOLUME_WAIT_S=300",
        "PREPARE_VOLUME_NEVER_FORMAT=0",
    ]
    assert ["systemctl", "enable", "--now", "docker.service"] not in runcmd_steps(gpu)


def test_the_docker_dropin_waits_for_the_mount_point():
    files = decoded_files(render_user_data(make_spec(mount_point="/srv/models")))
    dropin = files["/etc/systemd/system/docker.service.d/10-localai-weights-volume.conf"]
    assert dropin.endswith("[Unit]\nConditionPathIsMountPoint=/srv/models\n")
    assert "(data-root /srv/models/docker)" in dropin


def test_write_files_leave_out_the_default_mode_and_give_scripts_0755():
    entries = write_files(render_user_data(make_spec()))
    assert "permissions" not in entries[CONF_PATH]
    assert entries["/usr/local/sbin/localai-run"]["permissions"] == "0755"
    assert list(entries[CONF_PATH]) == ["path", "content"]


def test_the_gzip_is_the_smallest_and_the_limit_is_enforced(monkeypatch):
    spec = make_spec()
    packed = base64.b64decode(render_user_data_base64(spec))
    document = render_user_data(spec).encode()
    assert gzip.decompress(packed) == document
    assert len(packed) < len(gzip.compress(document, compresslevel=9, mtime=0)) * 0.98
    monkeypatch.setattr(cloud_init, "USER_DATA_LIMIT_BYTES", len(packed))
    assert render_user_data_base64(spec)  # exactly at the limit
    monkeypatch.setattr(cloud_init, "USER_DATA_LIMIT_BYTES", len(packed) - 1)
    with pytest.raises(ValueError, match=f"is {len(packed)} bytes; EC2 allows {len(packed) - 1}"):
        render_user_data_base64(spec)


# --- fleet documents and rendering details -----------------------------------------------


def mixed_fleet_spec():
    models = (DEFAULT_MODEL,)
    return fleet_spec(
        profiles={
            "c7i.xlarge": cloud_init.HostProfile(3.5, 7168, 4, False, model_set(models, 0), {}),
            "g6.xlarge": cloud_init.HostProfile(
                4.0, 14336, 4, True, model_set(models, 0), model_set(models, 99)
            ),
        }
    )


def test_each_fleet_profile_has_its_own_conf_and_model_files():
    files = decoded_files(render_user_data(mixed_fleet_spec()))
    cpu = files["/etc/localai/fleet/c7i.xlarge.conf"]
    gpu = files["/etc/localai/fleet/g6.xlarge.conf"]
    assert "\nLOCALAI_GPU_CAPABLE=0\nLOCALAI_GPU_IMAGE=\n" in cpu
    assert (
        "\nLOCALAI_GPU_CAPABLE=1\nLOCALAI_GPU_IMAGE=localai/localai:v2.24.0-cublas-cuda12\n" in gpu
    )
    assert "\nLOCALAI_CPUS=3.5\nLOCALAI_MEMORY_MB=7168\nLOCALAI_THREADS=4\n" in cpu
    assert cpu.endswith("\nLOCALAI_MODEL_SRC_DIR=/etc/localai/models/c7i.xlarge\n")
    models = sorted(p for p in files if p.startswith("/etc/localai/models/"))
    assert models == [
        "/etc/localai/models/c7i.xlarge/cpu/phi-3.5-mini-instruct.yaml",
        "/etc/localai/models/g6.xlarge/cpu/phi-3.5-mini-instruct.yaml",
        "/etc/localai/models/g6.xlarge/gpu/phi-3.5-mini-instruct.yaml",
    ]
    assert CONF_PATH not in files, "a fleet host writes its conf at boot"


@pytest.mark.parametrize("field", ["group", "hook"])
def test_bad_auto_scaling_names_are_refused(field):
    spec = mixed_fleet_spec()
    fleet = spec.fleet
    bad = dataclasses.replace(
        fleet,
        **({"autoscaling_group": "my group"} if field == "group" else {"lifecycle_hook": "x;y"}),
    )
    with pytest.raises(ValueError, match="may only contain letters, digits and _ / -"):
        render_user_data(dataclasses.replace(spec, fleet=bad))


def test_a_bad_profile_is_named_by_its_type():
    spec = mixed_fleet_spec()
    profiles = dict(spec.fleet.profiles)
    profiles["c7i.xlarge"] = dataclasses.replace(profiles["c7i.xlarge"], threads=0)
    bad = dataclasses.replace(spec, fleet=dataclasses.replace(spec.fleet, profiles=profiles))
    with pytest.raises(
        ValueError, match=r"^profile c7i.xlarge: threads must be at least 1, got 0$"
    ):
        render_user_data(bad)


def test_the_bootstrap_values_are_immutable():
    spec = mixed_fleet_spec()
    for value, field in ((spec, "port"), (spec.fleet, "lifecycle_hook"),
                         (spec.fleet.profiles["g6.xlarge"], "threads")):  # fmt: skip
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 1)


def test_a_negative_cpu_limit_is_refused():
    with pytest.raises(ValueError, match="cpu_limit must be > 0, got -1"):
        render_user_data(make_spec(cpu_limit=-1.0))


def test_only_plain_text_write_files_are_decoded():
    plain = "".join(["text/", "plain"])  # built at run time: not the module's own constant
    assert cloud_init.decode_write_file({"encoding": plain, "content": "x"}) == "x"
    assert cloud_init.decode_write_file({"content": "y"}) == "y"
    for encoding in ("b64", "gzip+base64", "base64", "text/x-shellscript", "zstd"):
        with pytest.raises(ValueError, match="unexpected write_files encoding"):
            cloud_init.decode_write_file({"encoding": encoding, "content": "eA=="})


def test_scripts_are_literal_blocks_and_short_values_plain():
    document = render_user_data(make_spec())
    assert (
        "\n- path: /usr/local/sbin/localai-run\n  permissions: '0755'\n  content: |\n    #!/usr/bin/env bash\n"
        in document
    )
    assert "\n- path: /etc/localai/localai.conf\n  content: |\n" in document


def test_non_ascii_text_is_written_as_is():
    model = "name: phi-3.5-mini-instruct\ndescription: café — ünïcode\n"
    document = render_user_data(make_spec(cpu_models={"phi-3.5-mini-instruct.yaml": model}))
    assert "description: café — ünïcode" in document


def test_compaction_keeps_the_first_line_and_every_line_of_a_here_document():
    text = (
        "# first line, even without #!\n# dropped\necho a\n"
        "cat <<EOF\n# c1 inside\ncode inside\n# c2 inside\nEOF\n# dropped after\necho b\n"
    )
    assert cloud_init.compact_script(text) == (
        "# first line, even without #!\necho a\n"
        "cat <<EOF\n# c1 inside\ncode inside\n# c2 inside\nEOF\necho b\n"
    )


# --- issue 22, second operator set: defaults, orders, flags and fleet refusals ------------


def test_the_optional_spec_fields_default_to_nothing():
    spec = make_spec()
    optional = {"extra_env", "hf_token_parameter", "weights_manifest", "never_format",
                "keep_removed_weights", "fleet", "volume_wait_s"}  # fmt: skip
    given = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    bare = cloud_init.BootstrapSpec(**{k: v for k, v in given.items() if k not in optional})
    assert (bare.extra_env, bare.hf_token_parameter, bare.weights_manifest) == ({}, "", "")
    assert (bare.never_format, bare.keep_removed_weights, bare.fleet) == (False, False, None)


def test_the_conf_writes_each_flag_as_0_or_1():
    conf = decoded_files(render_user_data(make_spec(gpu=True, keep_removed_weights=True)))[
        CONF_PATH
    ]
    assert "\nPREPARE_VOLUME_NEVER_FORMAT=0\n" in conf
    assert "\nLOCALAI_GPU_CAPABLE=1\n" in conf
    assert "\nLOCALAI_INSTALL_DOCKER=0\n" in conf
    assert conf.endswith("\nLOCALAI_KEEP_REMOVED_WEIGHTS=1\n")


def test_the_fleet_profile_conf_is_exactly_its_comment_and_values():
    files = decoded_files(render_user_data(mixed_fleet_spec()))
    assert files["/etc/localai/fleet/c7i.xlarge.conf"] == (
        "# c7i.xlarge: sized by components/sizing/planner.py for this type.\n"
        "LOCALAI_CPUS=3.5\nLOCALAI_MEMORY_MB=7168\nLOCALAI_THREADS=4\n"
        "LOCALAI_GPU_CAPABLE=0\nLOCALAI_GPU_IMAGE=\n"
        "LOCALAI_MODEL_SRC_DIR=/etc/localai/models/c7i.xlarge\n"
    )


def test_the_keys_a_fleet_host_discovers_are_the_ones_localai_host_profile_writes():
    script = (FILES_DIR / "localai-host-profile.sh").read_text()
    written = re.search(r"printf '((?:[A-Z_]+=%s\\n)+)'", script)
    assert written is not None
    keys = tuple(part.split("=")[0] for part in written.group(1).split("\\n") if part)
    assert cloud_init.DISCOVERED_KEYS == keys == ("LOCALAI_VOLUME_DEVICE", "LOCALAI_INSTANCE_TYPE")
    base = decoded_files(render_user_data(fleet_spec()))["/etc/localai/fleet/base.conf"]
    assert not any(f"\n{key}=" in base for key in keys)


def test_the_fleet_document_does_not_depend_on_the_order_profiles_and_models_come_in():
    spec = mixed_fleet_spec()
    reordered = {k: spec.fleet.profiles[k] for k in reversed(list(spec.fleet.profiles))}
    gpu = reordered["g6.xlarge"]
    models = ("phi-3.5-mini-instruct", "llama-3.1-8b-instruct")
    two = dataclasses.replace(
        gpu, cpu_models=model_set(models, 0), gpu_models=model_set(models, 99)
    )
    backwards = dataclasses.replace(
        two,
        cpu_models=dict(reversed(list(two.cpu_models.items()))),
        gpu_models=dict(reversed(list(two.gpu_models.items()))),
    )
    forwards_spec = dataclasses.replace(
        spec,
        fleet=dataclasses.replace(spec.fleet, profiles={**spec.fleet.profiles, "g6.xlarge": two}),
    )
    backwards_spec = dataclasses.replace(
        spec, fleet=dataclasses.replace(spec.fleet, profiles={**reordered, "g6.xlarge": backwards})
    )
    assert list(backwards_spec.fleet.profiles) != list(forwards_spec.fleet.profiles)
    document = render_user_data(forwards_spec)
    assert render_user_data(backwards_spec) == document
    paths = [entry["path"] for entry in yaml.safe_load(document)["write_files"]]
    assert paths.index("/etc/localai/fleet/c7i.xlarge.conf") < paths.index(
        "/etc/localai/fleet/g6.xlarge.conf"
    )
    gpu_models = [p for p in paths if p.startswith("/etc/localai/models/g6.xlarge/gpu/")]
    assert gpu_models == sorted(gpu_models) and len(gpu_models) == 2


def test_a_fleet_host_abandons_its_launch_when_its_profile_step_fails():
    steps = yaml.safe_load(render_user_data(fleet_spec()))["runcmd"]
    assert steps[1] == (
        "/usr/local/sbin/localai-host-profile || { rc=1; "
        "SERVICE_RESULT=host-profile-failed /usr/local/sbin/localai-lifecycle complete; }"
    )


def test_every_runcmd_step_and_package_is_one_block_style_line():
    document = render_user_data(make_spec())
    lines = document.split("\n")
    config = yaml.safe_load(document)
    start = lines.index("runcmd:")
    assert len([li for li in lines[start + 1 :] if li]) == len(config["runcmd"])
    assert all(li.startswith("- ") for li in lines[start + 1 :] if li)
    assert "\npackages:\n- docker.io\n- curl\n" in document


def test_a_here_string_does_not_start_a_here_document():
    text = '#!/usr/bin/env bash\nread -r a <<<word\n# dropped\nx=$(sed p <<<"$a")\n# dropped\n'
    assert cloud_init.compact_script(text) == (
        '#!/usr/bin/env bash\nread -r a <<<word\nx=$(sed p <<<"$a")\n'
    )
    assert cloud_init.compact_script("cat <<-END\n\t# kept\n\tEND\n# dropped\n") == (
        "cat <<-END\n\t# kept\n\tEND\n"
    )


def test_a_write_files_entry_without_content_writes_an_empty_file():
    assert cloud_init.decode_write_file({"path": "/etc/x"}) == ""


def test_the_shipped_files_are_ascii_so_their_encoding_cannot_differ():
    # read_file and the shared scripts read UTF-8 explicitly; an ASCII file reads the same
    # under any locale, which is why `encoding=None` is listed as an equivalent mutant.
    shipped = [*FILES_DIR.iterdir(), *cloud_init.SHARED_SCRIPTS.values()]
    assert shipped
    for path in shipped:
        path.read_bytes().decode("ascii")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"volume_device": "/dev/nvme1n1"},
         "volume_device must be empty on a fleet host: each instance finds its own weights "
         "volume (localai-host-profile)"),
        ({"never_format": True},
         "never_format is for a volume the user named; a fleet's are its own"),
        ({"profiles": {}}, "a fleet host needs at least one instance-type profile"),
        ({"profiles": "bad name"}, "'c7i xlarge' is not an EC2 instance type name"),
    ],
)  # fmt: skip
def test_each_fleet_refusal_says_why(change, message):
    spec = mixed_fleet_spec()
    if "profiles" in change:
        profiles = change["profiles"]
        if profiles == "bad name":
            profiles = {"c7i xlarge": spec.fleet.profiles["c7i.xlarge"]}
        spec = dataclasses.replace(spec, fleet=dataclasses.replace(spec.fleet, profiles=profiles))
    else:
        spec = dataclasses.replace(spec, **change)
    with pytest.raises(ValueError) as info:
        render_user_data(spec)
    assert str(info.value) == message


def test_a_gpu_profile_without_the_default_model_in_its_gpu_set_is_refused():
    spec = mixed_fleet_spec()
    profiles = dict(spec.fleet.profiles)
    profiles["g6.xlarge"] = dataclasses.replace(
        profiles["g6.xlarge"], gpu_models=model_set(("llama-3.1-8b-instruct",), 99)
    )
    bad = dataclasses.replace(spec, fleet=dataclasses.replace(spec.fleet, profiles=profiles))
    with pytest.raises(
        ValueError,
        match=r"^profile g6\.xlarge: default_model 'phi-3\.5-mini-instruct' is not among gpu_models",
    ):
        render_user_data(bad)


def test_the_runcmd_of_a_fleet_host_step_by_step():
    steps = yaml.safe_load(render_user_data(fleet_spec()))["runcmd"]
    assert steps == [
        "rc=0",
        "/usr/local/sbin/localai-host-profile || { rc=1; "
        "SERVICE_RESULT=host-profile-failed /usr/local/sbin/localai-lifecycle complete; }",
        "sh -c '. /etc/localai/localai.conf && exec env PREPARE_VOLUME_WAIT_S=300 "
        "PREPARE_VOLUME_NEVER_FORMAT=0 /usr/local/sbin/localai-prepare-volume "
        '"$LOCALAI_VOLUME_DEVICE" "$LOCALAI_MOUNT_POINT"\' || rc=1',
        "systemctl daemon-reload || rc=1",
        "systemctl enable --now --no-block localai.service localai-warmup.service "
        "localai-key-watch.timer localai-gpu-retry.timer localai-lifecycle-heartbeat.timer "
        "|| rc=1",
        'exit "$rc"',
    ]


def test_fleet_hosts_spread_key_restarts_over_two_minutes():
    base = decoded_files(render_user_data(fleet_spec()))["/etc/localai/fleet/base.conf"]
    assert "\nLOCALAI_KEY_RESTART_SPREAD_S=120\n" in base


def test_the_docker_dropin_is_written_whole_comments_included():
    files = decoded_files(render_user_data(make_spec(mount_point="/srv/models")))
    assert files["/etc/systemd/system/docker.service.d/10-localai-weights-volume.conf"] == (
        "# Docker's images live on the LocalAI weights volume (data-root /srv/models/docker):\n"
        "# start only once it is mounted; localai.service starts Docker then.\n"
        "[Unit]\nConditionPathIsMountPoint=/srv/models\n"
    )


# --- the CloudWatch agent -------------------------------------------------------------------


@pytest.mark.parametrize("gpu", [False, True])
def test_a_single_host_gets_the_agent_its_unit_and_one_configuration(gpu: bool):
    document = render_user_data(make_spec(gpu=gpu, region="us-east-1"))
    files = decoded_files(document)
    config = json.loads(files[cloud_init.METRICS_AGENT_CONFIG])
    assert cloud_init.METRICS_AGENT_GPU_CONFIG not in files
    assert config == agent_config(
        namespace="LocalAI/localai-dev", region="us-east-1", mount_point="/var/lib/localai", gpu=gpu
    )
    assert cloud_init.METRICS_AGENT in files
    started = runcmd_steps(yaml.safe_load(document))[-1]
    assert started[:4] == ["systemctl", "enable", "--now", "--no-block"]
    assert cloud_init.METRICS_AGENT_UNIT in started


def test_without_a_namespace_there_is_no_agent_at_all():
    document = render_user_data(make_spec(gpu=True, metrics_namespace=""))
    files = decoded_files(document)
    agent_paths = {
        cloud_init.METRICS_AGENT,
        cloud_init.METRICS_AGENT_CONFIG,
        cloud_init.METRICS_AGENT_GPU_CONFIG,
        *cloud_init.METRICS_AGENT_UNITS,
    }
    assert not agent_paths & set(files)
    assert cloud_init.METRICS_AGENT_UNIT not in document


def test_too_big_with_the_agent_says_how_to_leave_it_out():
    with pytest.raises(ValueError, match=r"localai:hostMetrics false\)\.$"):
        render_user_data_base64(make_spec(gpu=True, models=ALL_CATALOG_MODELS))
    noise = random.Random(5)
    bulky = {"m0.yaml": "name: m0\ndescription: " + "".join(
        noise.choice("abcdefghijklmnop") for _ in range(40000)
    )}  # fmt: skip
    with pytest.raises(ValueError, match=r"Deploy fewer models on this host\.$"):
        render_user_data_base64(
            make_spec(cpu_models=bulky, default_model="m0", metrics_namespace="")
        )


@pytest.mark.parametrize("namespace", ["AWS/EC2", "LocalAI/a b", "LocalAI/$(id)", "x" * 256])
def test_a_namespace_that_is_not_ours_is_refused(namespace: str):
    with pytest.raises(ValueError, match="metrics_namespace"):
        render_user_data(make_spec(metrics_namespace=namespace))
