"""components/weights/localai-fetch-weights.sh run for real against an HTTPS server on
127.0.0.1 (issue 10, part 1): good file, wrong hash, truncated and stalled transfers,
resume after a kill, a full disk, a file already present. Nothing is ever served that
was not verified."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from components.weights.manifest import FETCHER
from tests.support.locks import held_lock

FILE = "tiny.Q4_K_M.gguf"
BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    return directory


def partial_of(models: Path) -> Path:
    """Where a download in progress lives: the fetcher's own staging directory."""
    return models / ".localai" / "staging" / f"{FILE}.partial"


def staged_partial(models: Path, data: bytes) -> Path:
    path = partial_of(models)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.parent.chmod(0o700)
    path.write_bytes(data)
    return path


def manifest(tmp_path: Path, url: str, *, sha: str = SHA, size: int = len(BODY)) -> Path:
    path = tmp_path / "weights.tsv"
    path.write_text(f"# comment\n{FILE}\t{sha}\t{size}\t{url}/{FILE}\n")
    return path


def fetch(tmp_path: Path, server, models: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ["PATH"],
        "CURL_CA_BUNDLE": env.pop("CURL_CA_BUNDLE", ""),
        "FETCH_RETRY_DELAY_S": "0",
        "FETCH_STALL_S": "2",
        "FETCH_MIN_FREE_BYTES": "0",
        **env,
    }
    return subprocess.run(
        ["bash", str(FETCHER), str(tmp_path / "weights.tsv"), str(models)],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def serve(file_server, tls_certificate, tmp_path: Path, models: Path):
    file_server.files[f"/{FILE}"] = BODY
    manifest(tmp_path, file_server.base_url)

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return fetch(tmp_path, file_server, models, CURL_CA_BUNDLE=str(tls_certificate[0]), **env)

    return run


def test_a_good_file_is_downloaded_verified_and_renamed(serve, models: Path, file_server) -> None:
    result = serve()
    assert result.returncode == 0, result.stderr
    assert (models / FILE).read_bytes() == BODY
    assert not (partial_of(models)).exists()
    assert f"{FILE}: downloaded and verified" in result.stderr
    assert sorted(p.name for p in models.iterdir()) == [".localai", FILE], "nothing else listed"


def test_a_present_verified_file_is_not_downloaded_or_hashed_again(
    serve, models, file_server
) -> None:
    assert serve().returncode == 0
    file_server.requests.clear()
    again = serve()
    assert again.returncode == 0
    assert f"{FILE}: present and verified" in again.stderr
    assert file_server.requests == []


def test_a_present_file_without_a_stamp_is_verified_once(serve, models, file_server) -> None:
    (models / FILE).write_bytes(BODY)  # e.g. a volume from before the fetcher
    result = serve()
    assert result.returncode == 0 and f"{FILE}: verified" in result.stderr
    assert file_server.requests == []


def test_a_corrupt_present_file_is_replaced(serve, models, file_server) -> None:
    (models / FILE).write_bytes(b"not the weights")
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "does not match its sha256: fetching it again" in result.stderr
    assert (models / FILE).read_bytes() == BODY


def test_a_wrong_hash_is_never_served(tmp_path, serve, models, file_server) -> None:
    manifest(tmp_path, file_server.base_url, sha="ab" * 32)
    result = serve()
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"localai-fetch: error: sha256 mismatch for {FILE}: expected {'ab' * 32}, got {SHA}"
    )
    assert not (models / FILE).exists() and not (partial_of(models)).exists()
    assert len(file_server.requests) == 2, "one retry from the start, then it gives up"


def test_a_truncated_transfer_resumes_where_it_stopped(serve, models, file_server) -> None:
    file_server.script[f"/{FILE}"] = [("truncate", 100_000)]
    result = serve()
    assert result.returncode == 0, result.stderr
    assert (models / FILE).read_bytes() == BODY
    ranges = [r for _p, r, _a in file_server.requests]
    assert ranges == [None, "bytes=100000-"]


def test_a_stalled_transfer_is_reported_within_the_stall_limit_and_resumed(
    serve, models, file_server
) -> None:
    file_server.script[f"/{FILE}"] = [("stall", 50_000, 30)]
    started = time.monotonic()
    result = serve(FETCH_STALL_S="2")
    assert result.returncode == 0, result.stderr
    assert f"download of {FILE} stalled (under 1 KiB/s for 2s" in result.stderr
    assert time.monotonic() - started < 20, "the stall is noticed in seconds, not hours"
    assert (models / FILE).read_bytes() == BODY
    assert [r for _p, r, _a in file_server.requests][1] == "bytes=50000-"


def test_a_trickle_under_1_kib_per_second_counts_as_a_stall(serve, models, file_server) -> None:
    """Not only silence: 500 bytes a second (curl alone would accept 1) is a stall too, and
    the next attempt resumes where the trickle stopped."""
    file_server.script[f"/{FILE}"] = [("slow", 250, 0.5)]
    started = time.monotonic()
    result = serve(FETCH_STALL_S="2")
    assert result.returncode == 0, result.stderr
    assert f"download of {FILE} stalled (under 1 KiB/s for 2s" in result.stderr
    assert time.monotonic() - started < 20
    assert (models / FILE).read_bytes() == BODY
    second = [r for _p, r, _a in file_server.requests][1]
    assert second is not None and second.startswith("bytes=")


def test_a_transfer_that_keeps_stalling_fails_with_the_reason(serve, models, file_server) -> None:
    file_server.script[f"/{FILE}"] = [("stall", 1000, 30)] * 3
    result = serve(FETCH_ATTEMPTS="3", FETCH_STALL_S="1")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"localai-fetch: error: download of {FILE} stalled")
    )
    assert not (models / FILE).exists(), "a partial file is never served"


def test_a_killed_fetch_resumes_from_its_partial_file(
    tmp_path, serve, models, file_server, tls_certificate
) -> None:
    file_server.script[f"/{FILE}"] = [("slow", 20_000, 0.2)]
    process = subprocess.Popen(
        ["bash", str(FETCHER), str(tmp_path / "weights.tsv"), str(models)],
        env={**os.environ, "CURL_CA_BUNDLE": str(tls_certificate[0]), "FETCH_STALL_S": "10"},
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    partial = partial_of(models)
    deadline = time.monotonic() + 20
    while (not partial.exists() or partial.stat().st_size < 60_000) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # a reboot in the middle of a download
    process.wait(timeout=10)
    kept = partial.stat().st_size
    assert 0 < kept < len(BODY)
    result = serve()
    assert result.returncode == 0, result.stderr
    assert f"{FILE}: resuming at {kept} bytes" in result.stderr
    assert file_server.requests[-1][1] == f"bytes={kept}-"
    assert (models / FILE).read_bytes() == BODY


def test_a_server_that_cannot_resume_starts_over(serve, models, file_server) -> None:
    staged_partial(models, BODY[:1000])
    file_server.script[f"/{FILE}"] = [("no-range",)]
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "cannot resume" in result.stderr
    assert (models / FILE).read_bytes() == BODY


def test_a_leftover_partial_larger_than_the_file_is_discarded(serve, models) -> None:
    staged_partial(models, b"x" * (len(BODY) + 10))
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "is larger than the file" in result.stderr
    assert (models / FILE).read_bytes() == BODY


def test_not_enough_free_space_is_refused_with_the_numbers(
    tmp_path, serve, models, file_server
) -> None:
    manifest(tmp_path, file_server.base_url, size=10**15)
    result = serve()
    assert result.returncode == 1
    assert f"not enough space for {FILE} in {models}: it needs {10**15} more bytes" in result.stderr
    assert file_server.requests == [], "checked before downloading"


def test_a_disk_that_fills_during_the_download_fails_clearly(
    tmp_path, file_server, tls_certificate
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(small)], check=True)
    try:
        file_server.files[f"/{FILE}"] = BODY
        manifest(tmp_path, file_server.base_url, size=0)  # size unknown: no free-space check
        result = fetch(tmp_path, file_server, small, CURL_CA_BUNDLE=str(tls_certificate[0]))
        assert result.returncode == 1
        staging = small / ".localai" / "staging"
        assert f"cannot write {FILE}.partial in {staging} (disk full?)" in result.stderr
        assert not (small / FILE).exists()
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_a_missing_file_fails_after_its_attempts(serve, models, file_server) -> None:
    file_server.files.clear()
    result = serve(FETCH_ATTEMPTS="2")
    assert result.returncode == 1
    assert "404" in result.stderr.strip().splitlines()[-1]
    assert len(file_server.requests) == 2


def curl_recorder(tmp_path: Path) -> Path:
    """A ``curl`` first on PATH that records its argv, then runs the real one."""
    bin_dir = tmp_path / "recording-bin"
    bin_dir.mkdir()
    real = subprocess.run(
        ["sh", "-c", "command -v curl"], capture_output=True, text=True
    ).stdout.strip()
    (bin_dir / "curl").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {tmp_path / "curl-argv"}\nexec {real} "$@"\n'
    )
    (bin_dir / "curl").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("endpoint_is_the_server", "sent"), [(True, True), (False, False)])
def test_the_token_goes_only_to_the_hugging_face_endpoint_and_never_into_argv(
    tmp_path: Path, serve, file_server, endpoint_is_the_server: bool, sent: bool
) -> None:
    token = "hf_secret_token_0123456789"
    recorder = curl_recorder(tmp_path)
    endpoint = file_server.base_url if endpoint_is_the_server else "https://huggingface.co"
    result = serve(HF_TOKEN=token, HF_ENDPOINT=endpoint, PATH=f"{recorder}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    (_path, _range, auth) = file_server.requests[0]
    assert auth == (f"Bearer {token}" if sent else None)
    assert token not in (tmp_path / "curl-argv").read_text()
    assert token not in result.stderr


def test_a_corrupt_file_is_removed_even_when_the_new_download_fails(
    serve, models, file_server
) -> None:
    (models / FILE).write_bytes(b"not the weights")
    file_server.files.clear()  # the source is gone: 404
    result = serve(FETCH_ATTEMPTS="1")
    assert result.returncode == 1
    assert not (models / FILE).exists(), "a file that failed its sha256 is never left in place"


# -- guards: each one has a test that fails without it (scripts/mutation.sh runs the
#    hand-made mutants of scripts/mutation/localai-fetch-weights.sh.mutants) --------------

USAGE = "localai-fetch: error: usage: localai-fetch MANIFEST MODELS_DIR (a readable file and a directory)"


def run_fetcher(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(FETCHER), *args],
        env={"PATH": os.environ["PATH"], "FETCH_RETRY_DELAY_S": "0", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "case",
    ["none", "one", "three", "missing-manifest", "unreadable", "missing-dir", "dir-is-a-file"],
)
def test_wrong_arguments_are_refused_with_the_usage(
    tmp_path: Path, models: Path, case: str
) -> None:
    good = tmp_path / "weights.tsv"
    good.write_text("# nothing to fetch\n")
    unreadable = tmp_path / "unreadable.tsv"
    unreadable.write_text("# nothing\n")
    unreadable.chmod(0)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    args = {
        "none": [],
        "one": [str(good)],
        "three": [str(good), str(models), str(models)],
        "missing-manifest": [str(tmp_path / "absent.tsv"), str(models)],
        "unreadable": [str(unreadable), str(models)],
        "missing-dir": [str(good), str(tmp_path / "absent")],
        "dir-is-a-file": [str(good), str(a_file)],
    }[case]
    if case == "unreadable" and os.geteuid() == 0:
        # root reads a mode-0 file: run as nobody, from a directory nobody can enter (pytest's
        # own temporary directories are 0700), so only the manifest's mode is in the way.
        shared = Path(tempfile.mkdtemp())
        try:
            shared.chmod(0o755)
            script = shared / "fetch.sh"
            shutil.copy(FETCHER, script)
            (shared / "models").mkdir(mode=0o777)
            (shared / "models").chmod(0o777)
            manifest_path = shared / "unreadable.tsv"
            manifest_path.write_text("# nothing\n")
            manifest_path.chmod(0)
            result = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
                 str(script), str(manifest_path), str(shared / "models")],
                env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert list((shared / "models").iterdir()) == []
        finally:
            shutil.rmtree(shared)
    else:
        result = run_fetcher(*args)
    assert result.returncode == 1
    assert result.stderr.strip() == USAGE
    assert not (tmp_path / "absent").exists()
    assert list(models.iterdir()) == []


@pytest.mark.parametrize(
    "variable",
    ["FETCH_ATTEMPTS", "FETCH_CONNECT_TIMEOUT_S", "FETCH_STALL_S", "FETCH_RETRY_DELAY_S",
     "FETCH_MIN_FREE_BYTES", "FETCH_LOCK_WAIT_S"],
)  # fmt: skip
@pytest.mark.parametrize("value", ["x", "1.5", "-1", "10s"])
def test_settings_must_be_whole_numbers(
    tmp_path: Path, models: Path, variable: str, value: str
) -> None:
    (tmp_path / "weights.tsv").write_text("# nothing\n")
    name = {
        "FETCH_ATTEMPTS": "attempts",
        "FETCH_CONNECT_TIMEOUT_S": "connect_timeout",
        "FETCH_STALL_S": "stall_s",
        "FETCH_RETRY_DELAY_S": "retry_delay",
        "FETCH_MIN_FREE_BYTES": "min_free",
        "FETCH_LOCK_WAIT_S": "lock_wait",
    }[variable]
    result = run_fetcher(str(tmp_path / "weights.tsv"), str(models), **{variable: value})
    assert result.returncode == 1
    assert last_line(result) == f"localai-fetch: error: {name} must be a whole number: '{value}'"
    assert list(models.iterdir()) == []


def test_at_least_one_attempt(tmp_path: Path, models: Path) -> None:
    (tmp_path / "weights.tsv").write_text("# nothing\n")
    result = run_fetcher(str(tmp_path / "weights.tsv"), str(models), FETCH_ATTEMPTS="0")
    assert last_line(result) == "localai-fetch: error: attempts must be at least 1: '0'"
    ok = run_fetcher(str(tmp_path / "weights.tsv"), str(models), FETCH_ATTEMPTS="1")
    assert ok.returncode == 0, ok.stderr


BAD_LINES = {
    "a path": (f"sub/{FILE}\t{SHA}\t1\tURL", f"manifest names a bad file 'sub/{FILE}'"),
    "parent": (f"../{FILE}\t{SHA}\t1\tURL", f"manifest names a bad file '../{FILE}'"),
    "hidden": (f".{FILE}\t{SHA}\t1\tURL", f"manifest names a bad file '.{FILE}'"),
    "short sha": (f"{FILE}\t{SHA[:63]}\t1\tURL", f"manifest has no valid sha256 for {FILE}"),
    "upper sha": (f"{FILE}\t{SHA.upper()}\t1\tURL", f"manifest has no valid sha256 for {FILE}"),
    "long sha": (f"{FILE}\t{SHA}0\t1\tURL", f"manifest has no valid sha256 for {FILE}"),
    "size": (f"{FILE}\t{SHA}\t1e6\tURL", f"manifest has no valid size for {FILE}"),
    "negative size": (f"{FILE}\t{SHA}\t-1\tURL", f"manifest has no valid size for {FILE}"),
    "three fields": (f"{FILE}\t{SHA}\t1", f"manifest line for '{FILE}' needs 4 tab-separated fields"),
    "five fields": (f"{FILE}\t{SHA}\t1\tURL\textra", f"manifest line for '{FILE}' needs 4 tab-separated fields"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_manifest_line_is_refused_before_any_download(
    tmp_path: Path, models: Path, file_server, tls_certificate, case: str
) -> None:
    file_server.files[f"/{FILE}"] = BODY
    line, message = BAD_LINES[case]
    (tmp_path / "weights.tsv").write_text(
        line.replace("URL", f"{file_server.base_url}/{FILE}") + "\n"
    )
    result = run_fetcher(
        str(tmp_path / "weights.tsv"), str(models), CURL_CA_BUNDLE=str(tls_certificate[0])
    )
    assert result.returncode == 1
    assert last_line(result) == f"localai-fetch: error: {message}"
    assert file_server.requests == []
    assert sorted(p.name for p in models.iterdir()) == [".localai"]
    assert not (tmp_path / FILE).exists()


def test_plain_http_is_refused_without_connecting(tmp_path: Path, models: Path) -> None:
    (tmp_path / "weights.tsv").write_text(
        f"{FILE}\t{SHA}\t{len(BODY)}\thttp://127.0.0.1:9/{FILE}\n"
    )
    result = run_fetcher(str(tmp_path / "weights.tsv"), str(models), FETCH_ATTEMPTS="1")
    assert result.returncode == 1
    assert last_line(result).startswith(f"localai-fetch: error: download of {FILE} failed: ")
    assert "http_get: command not found" in last_line(result), "https and s3 only"
    assert not (models / FILE).exists()


def test_a_second_fetch_waits_for_the_first_and_downloads_nothing_meanwhile(
    serve, models: Path, file_server
) -> None:
    (models / ".localai").mkdir()
    lock = models / ".localai" / "fetch.lock"
    with held_lock(lock):
        started = time.monotonic()
        result = serve(FETCH_LOCK_WAIT_S="2")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"another fetch into {models} is running; waiting up to 2s for it" in result.stderr
    assert last_line(result) == (
        f"localai-fetch: error: another fetch still holds {lock} after 2s; nothing was downloaded"
    )
    assert 1.5 <= elapsed < 10
    assert file_server.requests == []
    assert not (partial_of(models)).exists()
    # Released: the same fetch now goes through.
    assert serve().returncode == 0
    assert (models / FILE).read_bytes() == BODY


def test_concurrent_fetches_download_the_file_once(serve, models: Path, file_server) -> None:
    results = []
    threads = [threading.Thread(target=lambda: results.append(serve())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert (models / FILE).read_bytes() == BODY
    assert len(file_server.requests) == 1
    assert sum(f"{FILE}: downloaded and verified" in r.stderr for r in results) == 1


def test_downloaded_files_are_readable_by_others_whatever_the_umask(serve, models: Path) -> None:
    """LocalAI may run as another user than the fetcher; the script sets umask 022."""
    old = os.umask(0o077)
    try:
        assert serve().returncode == 0
    finally:
        os.umask(old)
    assert (models / FILE).stat().st_mode & 0o777 == 0o644


def test_the_free_space_check_keeps_the_margin_free(serve, models, file_server) -> None:
    """The file fits, but not with FETCH_MIN_FREE_BYTES left over: refused, nothing fetched."""
    margin = 2**50  # more than any disk here has free
    result = serve(FETCH_MIN_FREE_BYTES=str(margin))
    assert result.returncode == 1
    assert f"it needs {len(BODY)} more bytes (+ {margin} kept free)" in result.stderr
    assert file_server.requests == []
    assert serve(FETCH_MIN_FREE_BYTES="0").returncode == 0


def test_a_full_disk_is_not_retried(tmp_path, file_server, tls_certificate) -> None:
    """curl's exit 23 (write error) ends the fetch at once: retrying cannot free space."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(small)], check=True)
    try:
        file_server.files[f"/{FILE}"] = BODY
        manifest(tmp_path, file_server.base_url, size=0)
        result = fetch(tmp_path, file_server, small, CURL_CA_BUNDLE=str(tls_certificate[0]))
        assert result.returncode == 1
        assert len(file_server.requests) == 1
        assert "retrying" not in result.stderr
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_a_stamped_file_that_changed_since_is_verified_again(serve, models, file_server) -> None:
    """The stamp holds the size and mtime it was verified at: a file changed since (a
    restore, a manual copy) is hashed again, not trusted."""
    assert serve().returncode == 0
    time.sleep(0.05)  # past the filesystem's timestamp granularity (a few ms at most)
    (models / FILE).write_bytes(BODY[:-1] + b"\0")  # same size, same inode
    file_server.requests.clear()
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "does not match its sha256: fetching it again" in result.stderr
    assert (models / FILE).read_bytes() == BODY
    assert len(file_server.requests) == 1


def test_a_server_that_never_resumes_gets_one_request_from_the_start(
    serve, models, file_server
) -> None:
    """The partial is dropped when the server cannot resume it: the retry asks for the
    whole file, with no Range header, instead of failing on the same partial again."""
    staged_partial(models, BODY[:1000])
    file_server.script[f"/{FILE}"] = [("no-range",)] * 5
    result = serve(FETCH_ATTEMPTS="3")
    assert result.returncode == 0, result.stderr
    assert [r[1] for r in file_server.requests] == ["bytes=1000-", None]
    assert (models / FILE).read_bytes() == BODY


# -- issue 18, items 15-18: the models directory is the container's; the fetcher is root ---


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file the container must never get the fetcher to touch (think /etc/shadow)."""
    path = tmp_path / "outside" / "precious"
    path.parent.mkdir()
    path.write_bytes(b"precious\n")
    path.chmod(0o600)
    return path


def ec2_state(tmp_path: Path) -> dict[str, str]:
    """As on EC2: the state lives beside the models directory, where the container cannot."""
    return {"FETCH_STATE_DIR": str(tmp_path / "fetch-state")}


def unchanged(path: Path) -> bool:
    return path.read_bytes() == b"precious\n" and (path.stat().st_mode & 0o777) == 0o600


def test_a_link_planted_at_the_files_name_is_replaced_not_followed(
    tmp_path, serve, models, outside
) -> None:
    (models / FILE).symlink_to(outside)
    result = serve(**ec2_state(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "not a regular file (a link or a device): removing it, unread" in result.stderr
    assert not (models / FILE).is_symlink() and (models / FILE).read_bytes() == BODY
    assert unchanged(outside)


def test_a_link_planted_as_the_old_partial_is_never_appended_to(
    tmp_path, serve, models, outside
) -> None:
    (models / f"{FILE}.partial").symlink_to(outside)
    result = serve(**ec2_state(tmp_path))
    assert result.returncode == 0, result.stderr
    assert unchanged(outside)
    assert (models / FILE).read_bytes() == BODY
    assert not (models / f"{FILE}.partial").exists()


def test_a_fifo_at_the_files_name_is_removed_unread(tmp_path, serve, models) -> None:
    os.mkfifo(models / FILE)
    result = serve(**ec2_state(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (models / FILE).read_bytes() == BODY


def test_a_linked_state_directory_is_refused(tmp_path, serve, models, outside) -> None:
    (models / ".localai").symlink_to(outside.parent)
    result = serve()
    assert result.returncode == 1
    assert last_line(result) == (
        f"localai-fetch: error: {models}/.localai is a symbolic link: refusing to use it"
    )
    assert sorted(p.name for p in outside.parent.iterdir()) == ["precious"]


def test_the_state_directory_is_private(tmp_path, serve) -> None:
    result = serve(**ec2_state(tmp_path))
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "fetch-state", tmp_path / "fetch-state" / "staging"):
        assert path.stat().st_mode & 0o777 == 0o700


STUB_MV_THEN_SWAP = r"""#!/usr/bin/env bash
# The real mv, then (once the weights are in place) another file swapped in at the name,
# as a container writing the models directory could do right after the rename.
/bin/mv "$@" || exit
dest=${@: -1}
if [[ "$dest" == "$SWAP_AT" ]]; then
    rm -f -- "$dest"
    printf 'swapped' >"$dest"
fi
"""


def test_a_file_swapped_after_the_rename_is_never_stamped(tmp_path, serve, models) -> None:
    """The old fetcher hashed, renamed, then stamped whatever the name held (item 18)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "mv").write_text(STUB_MV_THEN_SWAP)
    (stubs / "mv").chmod(0o755)
    result = serve(
        PATH=f"{stubs}:{os.environ['PATH']}", SWAP_AT=str(models / FILE), **ec2_state(tmp_path)
    )
    assert result.returncode == 1
    assert last_line(result) == (
        f"localai-fetch: error: {FILE} changed in {models} while it was moved into place; "
        "nothing is stamped"
    )
    assert not (tmp_path / "fetch-state" / "verified" / FILE).exists()
    again = serve(**ec2_state(tmp_path))  # the next start hashes it and fetches it again
    assert again.returncode == 0, again.stderr
    assert (models / FILE).read_bytes() == BODY


def test_a_complete_partial_is_verified_without_asking_for_bytes_past_its_end(
    serve, models, file_server
) -> None:
    """A host stopped during the final sha256 resumed at the end, got 416 and failed on
    every start after (item 16)."""
    staged_partial(models, BODY)
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "the partial download is complete; verifying it" in result.stderr
    assert file_server.requests == []
    assert (models / FILE).read_bytes() == BODY


def test_a_complete_partial_of_unknown_size_is_verified_on_416(
    tmp_path, serve, models, file_server
) -> None:
    manifest(tmp_path, file_server.base_url, size=0)
    staged_partial(models, BODY)
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "(HTTP 416); verifying what is there" in result.stderr
    assert (models / FILE).read_bytes() == BODY


def test_a_file_named_like_a_partial_is_fetched_like_any_other(
    tmp_path, file_server, tls_certificate, models
) -> None:
    name = f"{FILE}.partial"
    file_server.files[f"/{name}"] = BODY
    (tmp_path / "weights.tsv").write_text(
        f"{name}\t{SHA}\t{len(BODY)}\t{file_server.base_url}/{name}\n"
        f"{FILE}\t{SHA}\t{len(BODY)}\t{file_server.base_url}/{name}\n"
    )
    result = fetch(tmp_path, file_server, models, CURL_CA_BUNDLE=str(tls_certificate[0]))
    assert result.returncode == 0, result.stderr
    assert (models / FILE).read_bytes() == BODY == (models / name).read_bytes()
    again = fetch(tmp_path, file_server, models, CURL_CA_BUNDLE=str(tls_certificate[0]))
    assert again.returncode == 0 and again.stderr.count(": present and verified") == 2


def test_an_oversized_body_is_cut_at_the_declared_size(serve, models, file_server) -> None:
    """An endless body filled the volume that also holds Docker's images (item 17)."""
    file_server.script[f"/{FILE}"] = [("trailing", 5_000_000)] * 3
    result = serve()
    assert result.returncode == 0, result.stderr
    assert len(file_server.requests) == 1, "the declared bytes verify: no second request"
    assert (models / FILE).read_bytes() == BODY, "the declared bytes, and not one more"
    assert not partial_of(models).exists()


def test_an_announced_oversized_body_is_refused_and_fetched_again(
    tmp_path, serve, models, file_server
) -> None:
    bigger = BODY + b"x" * 10
    file_server.files[f"/{FILE}"] = bigger
    manifest(tmp_path, file_server.base_url)  # declares len(BODY)
    result = serve(FETCH_ATTEMPTS="2")
    assert result.returncode == 1
    assert "the server announced more than the 300000 bytes" in result.stderr
    assert not (models / FILE).exists()


def test_weights_no_configured_model_lists_are_removed(tmp_path, serve, models) -> None:
    """A removed model's weights stayed as a loose file that /v1/models listed and any key
    holder could load with LocalAI's defaults (item 32)."""
    (models / "old-model.Q4_K_M.gguf").write_bytes(b"GGUF old")
    (models / "OTHER.BIN").write_bytes(b"old")
    (models / "mine.yaml").write_text("name: mine\n")
    result = serve()
    assert result.returncode == 0, result.stderr
    assert "old-model.Q4_K_M.gguf: no configured model uses it; removed" in result.stderr
    assert sorted(p.name for p in models.iterdir()) == sorted([".localai", FILE, "mine.yaml"])


def test_with_the_opt_in_they_move_out_of_the_models_directory(tmp_path, serve, models) -> None:
    (models / "old-model.Q4_K_M.gguf").write_bytes(b"GGUF old")
    (models / "planted.gguf").symlink_to("/etc/hostname")
    kept = tmp_path / "removed-weights"
    result = serve(FETCH_RETIRE_DIR=str(kept))
    assert result.returncode == 0, result.stderr
    assert (kept / "old-model.Q4_K_M.gguf").read_bytes() == b"GGUF old"
    assert not (kept / "planted.gguf").exists(), "a link is removed, never moved or followed"
    assert sorted(p.name for p in models.iterdir()) == [".localai", FILE]
    assert kept.stat().st_mode & 0o777 == 0o700
