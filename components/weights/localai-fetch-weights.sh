#!/usr/bin/env bash
# localai-fetch-weights MANIFEST MODELS_DIR: every file MANIFEST lists is present in
# MODELS_DIR and verified before LocalAI starts. One fetcher for both targets (the EC2 host
# and, locally, the LocalAI container start). LocalAI v2.24.0's own downloader
# (pkg/downloader/uri.go) has no timeout and no resume, renames a file into place before
# its sha256 is checked, and starts serving after a failed download; this one does not.
#
# MANIFEST lines: FILENAME<TAB>SHA256<TAB>SIZE<TAB>URL (SIZE 0: unknown; '#' comments).
# Per file: skip it when present and verified (a stamp in MODELS_DIR/.localai/verified,
# a directory LocalAI does not list, of the file's sha256, size, inode and ctime); else
# check free space, download to FILENAME.partial with HTTP range resume, a connect
# timeout and a stall limit (slower than 1 KiB/s for FETCH_STALL_S), up to FETCH_ATTEMPTS
# attempts with backoff; verify the SHA-256; rename.
# Exit 0 when every file is in place; 1 with "localai-fetch: error: ..." as the last line.
# Env: FETCH_ATTEMPTS (5), FETCH_CONNECT_TIMEOUT_S (30), FETCH_STALL_S (60),
#      FETCH_RETRY_DELAY_S (5), FETCH_MIN_FREE_BYTES (67108864: kept free beyond the file),
#      FETCH_LOCK_WAIT_S (3600: how long to wait for another fetch into MODELS_DIR),
#      FETCH_SUMMARY_FILE (optional: "fetched_bytes=N verified_bytes=N seconds=N" at the end),
#      HF_TOKEN (optional, for gated models: sent only to URLs under HF_ENDPOINT, default
#      https://huggingface.co, and never on a command line).
set -euo pipefail
umask 022

readonly PROG=localai-fetch
attempts=${FETCH_ATTEMPTS:-5}
connect_timeout=${FETCH_CONNECT_TIMEOUT_S:-30}
stall_s=${FETCH_STALL_S:-60}
retry_delay=${FETCH_RETRY_DELAY_S:-5}
min_free=${FETCH_MIN_FREE_BYTES:-67108864}
lock_wait=${FETCH_LOCK_WAIT_S:-3600}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

[[ $# -eq 2 && -r "$1" && -d "$2" ]] || die "usage: $PROG MANIFEST MODELS_DIR (a readable file and a directory)"
manifest=$1
dir=${2%/}
for var in attempts connect_timeout stall_s retry_delay min_free lock_wait; do
    [[ "${!var}" =~ ^[0-9]+$ ]] || die "$var must be a whole number: '${!var}'"
done
((attempts >= 1)) || die "attempts must be at least 1: '$attempts'"
state="$dir/.localai/verified"
mkdir -p -- "$state"
# One fetch per directory at a time: two would append to the same .partial.
lock="$dir/.localai/fetch.lock"
exec 8>>"$lock"
if ! flock -n 8; then
    log "another fetch into $dir is running; waiting up to ${lock_wait}s for it"
    flock -w "$lock_wait" 8 || die "another fetch still holds $lock after ${lock_wait}s; nothing was downloaded"
fi

file_size() { stat -c %s -- "$1"; }
# The stamp: sha256, size, inode and ctime (nanoseconds; no tool can set it back). Any
# write or replacement after the verification changes it, and the file is hashed again.
stamp_of() { printf '%s %s\n' "$1" "$(stat -c '%s %i %z' -- "$2")"; }
sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }

curl_get() { # URL OUTPUT: resume into OUTPUT; the token goes in a config on stdin, not argv
    local url=$1 out=$2 config=""
    if [[ -n "${HF_TOKEN:-}" && "$url" == "${HF_ENDPOINT:-https://huggingface.co}"/* ]]; then
        config="header = \"Authorization: Bearer ${HF_TOKEN}\""
    fi
    printf '%s\n' "$config" | curl --config - --fail --location --silent --show-error \
        --proto '=https' --proto-redir '=https' --connect-timeout "$connect_timeout" \
        --speed-limit 1024 --speed-time "$stall_s" --continue-at - --output "$out" -- "$url"
}

fetch_one() { # NAME SHA256 SIZE URL
    local name=$1 sha=$2 size=$3 url=$4
    local target="$dir/$name" partial="$dir/$name.partial" stamp="$state/$name"
    [[ "$name" != */* && "$name" != .* && -n "$name" ]] || die "manifest names a bad file '$name'"
    [[ "$sha" =~ ^[0-9a-f]{64}$ ]] || die "manifest has no valid sha256 for $name"
    [[ "$size" =~ ^[0-9]+$ ]] || die "manifest has no valid size for $name"
    if [[ -f "$target" ]]; then
        if [[ -f "$stamp" && "$(cat -- "$stamp")" == "$(stamp_of "$sha" "$target")" ]]; then
            log "$name: present and verified"
            verified_bytes=$((verified_bytes + $(file_size "$target")))
            return 0
        fi
        log "$name: present; verifying its sha256"
        if [[ "$(sha256_of "$target")" == "$sha" ]]; then
            stamp_of "$sha" "$target" >"$stamp"
            log "$name: verified"
            verified_bytes=$((verified_bytes + $(file_size "$target")))
            return 0
        fi
        log "$name on the volume does not match its sha256: fetching it again"
        rm -f -- "$target" "$stamp"
    fi
    local have=0
    [[ -f "$partial" ]] && have=$(file_size "$partial")
    if ((size > 0 && have > size)); then
        log "$name.partial is larger than the file ($have > $size bytes): starting over"
        rm -f -- "$partial"
        have=0
    fi
    if ((size > 0)); then
        local free need
        free=$(df --output=avail -B1 -- "$dir" | tail -n 1 | tr -d ' ')
        need=$((size - have + min_free))
        ((free >= need)) ||
            die "not enough space for $name in $dir: it needs $((size - have)) more bytes (+ $min_free kept free), $free are free; grow the volume"
    fi
    local attempt=1 delay=$retry_delay rc mismatches=0 started
    ((have == 0)) || log "$name: resuming at $have bytes"
    while :; do
        log "$name: downloading (attempt $attempt/$attempts)"
        started=$SECONDS
        rc=0
        curl_get "$url" "$partial" 2>"$partial.err" || rc=$?
        if ((rc == 0)); then
            local got
            got=$(sha256_of "$partial") # once: the file may be gigabytes
            if [[ "$got" == "$sha" ]]; then
                mv -f -- "$partial" "$target"
                rm -f -- "$partial.err"
                stamp_of "$sha" "$target" >"$stamp"
                log "$name: downloaded and verified ($(file_size "$target") bytes in $((SECONDS - started))s)"
                fetched_bytes=$((fetched_bytes + $(file_size "$target")))
                return 0
            fi
            mismatches=$((mismatches + 1))
            rm -f -- "$partial"
            ((mismatches < 2)) ||
                die "sha256 mismatch for $name: expected $sha, got $got (twice; the file was removed, nothing is served)"
            log "sha256 mismatch for $name (got $got): downloading it again from the start"
        else
            local why
            why=$(tail -n 1 -- "$partial.err" 2>/dev/null | sed 's/^curl: ([0-9]*) //')
            case $rc in
            28) why="download of $name stalled (under 1 KiB/s for ${stall_s}s, or no connection within ${connect_timeout}s)" ;;
            33 | 36) # the server cannot resume: start over
                rm -f -- "$partial"
                why="the server cannot resume $name: starting over" ;;
            23) die "cannot write $name.partial in $dir (disk full?): ${why:-curl exit 23}" ;;
            *) why="download of $name failed: ${why:-curl exit $rc}" ;;
            esac
            ((attempt < attempts)) || die "$why (after $attempts attempts)"
            log "$why; retrying in ${delay}s"
        fi
        rm -f -- "$partial.err"
        attempt=$((attempt + 1))
        sleep "$delay"
        delay=$((delay < 30 ? delay * 2 : 60))
    done
}

count=0
fetched_bytes=0
verified_bytes=0
began=$SECONDS
while IFS=$'\t' read -r name sha size url rest || [[ -n "${name:-}" ]]; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    [[ -n "$url" && -z "${rest:-}" ]] || die "manifest line for '$name' needs 4 tab-separated fields"
    fetch_one "$name" "$sha" "$size" "$url"
    count=$((count + 1))
done <"$manifest"
log "all $count files present and verified in $dir"
if [[ -n "${FETCH_SUMMARY_FILE:-}" ]]; then
    printf 'fetched_bytes=%s verified_bytes=%s seconds=%s\n' "$fetched_bytes" "$verified_bytes" \
        "$((SECONDS - began))" >"$FETCH_SUMMARY_FILE"
fi
