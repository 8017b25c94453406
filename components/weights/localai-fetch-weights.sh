#!/usr/bin/env bash
# localai-fetch-weights MANIFEST MODELS_DIR: every file MANIFEST lists is present in
# MODELS_DIR and verified before LocalAI starts. One fetcher for both targets (the EC2 host
# and, locally, the LocalAI container start). LocalAI v2.24.0's own downloader
# (pkg/downloader/uri.go) has no timeout and no resume, renames a file into place before
# its sha256 is checked, and starts serving after a failed download; this one does not.
#
# MANIFEST lines: FILENAME<TAB>SHA256<TAB>SIZE<TAB>URL (SIZE 0: unknown; '#' comments).
# URL is https://... (curl) or s3://BUCKET/KEY (SIZE required), which s3_get (components/
# weights/localai-fetch-s3.sh, on PATH) reads; only hosts that read from S3 carry it: EC2's
# user data has room for little more than this script.
# Per file: skip it when present and verified (a stamp in STATE/verified of the file's
# sha256, size, inode and ctime); else check free space, download to STATE/staging/
# FILENAME.partial with HTTP range resume, a connect timeout, a stall limit (slower than
# 1 KiB/s for FETCH_STALL_S) and never more than SIZE bytes, up to FETCH_ATTEMPTS attempts
# with backoff; verify the SHA-256; rename into MODELS_DIR and check it arrived.
#
# MODELS_DIR is writable by the LocalAI container; this runs as root on the EC2 host. So
# nothing in MODELS_DIR is ever opened for writing or followed: files are checked and
# hashed in STATE (FETCH_STATE_DIR, a directory only this user may write, outside the
# container's reach on EC2; default MODELS_DIR/.localai, where the container runs the
# fetcher itself) and moved in with rename(2), which replaces a planted link instead of
# writing through it; a link or device at a file's name is removed, never read.
# Exit 0 when every file is in place; 1 with "localai-fetch: error: ..." as the last line.
# Env: FETCH_ATTEMPTS (5), FETCH_CONNECT_TIMEOUT_S (30), FETCH_STALL_S (60),
#      FETCH_RETRY_DELAY_S (5), FETCH_MIN_FREE_BYTES (67108864: kept free beyond the file),
#      FETCH_LOCK_WAIT_S (3600: how long to wait for another fetch into MODELS_DIR),
#      FETCH_STATE_DIR (MODELS_DIR/.localai: stamps, staging and the lock; same filesystem),
#      FETCH_RETIRE_DIR (optional: weights files no manifest line lists are moved there, on
#      the same filesystem and outside MODELS_DIR; unset, they are removed),
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
# fd 7: the log, also for the S3 helper, whose stderr is captured for an error message
exec 7>&2
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
state_root=${FETCH_STATE_DIR:-$dir/.localai}
state_root=${state_root%/}
# own_dir PATH: create it 0700 or accept it only if it is a real directory we own
own_dir() {
    [[ ! -L "$1" ]] || die "$1 is a symbolic link: refusing to use it"
    # a concurrent fetch may win
    [[ -d "$1" ]] || mkdir -m 0700 -- "$1" 2>/dev/null || true
    [[ -d "$1" && ! -L "$1" && -O "$1" ]] || die "$1 is not a directory of this user: refusing to use it"
    chmod 0700 -- "$1"
}
own_dir "$state_root"
state="$state_root/verified"
staging="$state_root/staging"
own_dir "$state"
own_dir "$staging"
[[ "$(stat -c %d -- "$staging")" == "$(stat -c %d -- "$dir")" ]] ||
    die "$staging and $dir are on different filesystems: files could not be renamed into place"
# One fetch per directory at a time: two would append to the same .partial.
lock="$state_root/fetch.lock"
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

# A token is a bearer token (RFC 6750 b64token: letters, digits and -._~+/=): anything else
# could end the quoted value in curl's config and add a directive of its own.
[[ -z "${HF_TOKEN:-}" || "$HF_TOKEN" =~ ^[A-Za-z0-9._~+/=-]{1,1024}$ ]] ||
    die "HF_TOKEN has characters a bearer token cannot have; nothing was downloaded"

# https_get URL OUTPUT FROM LIMIT: append the bytes after FROM to OUTPUT, at most LIMIT of
# them (0: no limit); the token goes in a config on stdin, never in argv.
https_get() {
    local url=$1 out=$2 from=$3 limit=$4 config="" statuses
    if [[ -n "${HF_TOKEN:-}" && "$url" == "${HF_ENDPOINT:-https://huggingface.co}"/* ]]; then
        config="header = \"Authorization: Bearer ${HF_TOKEN}\""
    fi
    local args=(--config - --fail --location --silent --show-error --proto '=https'
        --proto-redir '=https' --connect-timeout "$connect_timeout" --speed-limit 1024
        --speed-time "$stall_s" --output - --continue-at "$from")
    # --max-filesize refuses a declared length over the whole file's size (a 200 for the
    # whole file must still get curl's own "cannot resume"); head caps what is written at
    # the bytes still missing, whatever the server sends (curl before 8.4 does not stop
    # an ongoing transfer at --max-filesize).
    ((limit == 0)) || args+=(--max-filesize "$((from + limit))")
    if printf '%s\n' "$config" | curl "${args[@]}" -- "$url" |
        if ((limit > 0)); then head -c "$limit"; else cat; fi >>"$out"; then
        statuses=("${PIPESTATUS[@]}")
    else
        statuses=("${PIPESTATUS[@]}")
    fi
    if ((statuses[2] != 0)); then
        # writing OUTPUT failed: the disk is full or gone
        return 23
    fi
    if ((statuses[1] == 23 && limit > 0)) && (($(file_size "$out") >= from + limit)); then
        # head stopped reading at the limit: the bytes past it were never wanted
        return 0
    fi
    return "${statuses[1]}"
}

# adopt NAME STAGED SHA: move a verified STAGED file to MODELS_DIR/NAME, stamp it there
adopt() {
    local name=$1 staged=$2 sha=$3 held now
    chmod 0644 -- "$staged"
    # Held open across the move, the hashed file's inode cannot be freed and reused, so the
    # same device and inode at the name afterwards means the same file.
    exec 9<"$staged"
    held=$(stat -L -c '%d %i' /dev/fd/9)
    mv -fT -- "$staged" "$dir/$name"
    now=$(stat -c '%d %i %F' -- "$dir/$name" 2>/dev/null) || now=""
    exec 9<&-
    [[ "$now" == "$held regular file" ]] ||
        die "$name changed in $dir while it was moved into place; nothing is stamped"
    stamp_of "$sha" "$dir/$name" >"$state/$name"
}

# fetch_one NAME SHA256 SIZE URL
fetch_one() {
    local name=$1 sha=$2 size=$3 url=$4
    local target="$dir/$name" partial="$staging/$name.partial" stamp="$state/$name"
    local check="$staging/$name.check"
    [[ "$name" != */* && "$name" != .* && -n "$name" ]] || die "manifest names a bad file '$name'"
    [[ "$sha" =~ ^[0-9a-f]{64}$ ]] || die "manifest has no valid sha256 for $name"
    [[ "$size" =~ ^[0-9]+$ ]] || die "manifest has no valid size for $name"
    rm -f -- "$check"
    if [[ -L "$target" || (-e "$target" && ! -f "$target") ]]; then
        [[ -L "$target" || ! -d "$target" ]] || die "$target is a directory, not the weights file: remove it"
        log "$name in $dir is not a regular file (a link or a device): removing it, unread"
        rm -f -- "$target" "$stamp"
    fi
    if [[ -f "$target" ]]; then
        if [[ -f "$stamp" && "$(cat -- "$stamp")" == "$(stamp_of "$sha" "$target")" ]]; then
            log "$name: present and verified"
            verified_bytes=$((verified_bytes + $(file_size "$target")))
            return 0
        fi
        # Checked where only this user writes: moved (not copied) out, so what is hashed
        # is what goes back, and nothing can swap it in between.
        log "$name: present; verifying its sha256"
        mv -fT -- "$target" "$check"
        if [[ -f "$check" && ! -L "$check" && "$(sha256_of "$check")" == "$sha" ]]; then
            adopt "$name" "$check" "$sha"
            log "$name: verified"
            verified_bytes=$((verified_bytes + $(file_size "$target")))
            return 0
        fi
        log "$name on the volume does not match its sha256: fetching it again"
        rm -f -- "$check" "$stamp"
    fi
    # A partial left in MODELS_DIR by an earlier version (unless the manifest lists a file
    # of that name): continue from it only if it is a plain file once it is where nothing
    # else can write.
    if [[ -z "${listed[$name.partial]:-}" && (-e "$dir/$name.partial" || -L "$dir/$name.partial") ]]; then
        mv -fT -- "$dir/$name.partial" "$partial.old"
        if [[ -f "$partial.old" && ! -L "$partial.old" && ! -e "$partial" ]]; then
            mv -fT -- "$partial.old" "$partial"
        fi
        rm -f -- "$partial.old"
    fi
    [[ ! -L "$partial" && (! -e "$partial" || -f "$partial") ]] || rm -rf -- "$partial"
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
        started=$SECONDS
        rc=0
        have=0
        [[ -f "$partial" ]] && have=$(file_size "$partial")
        if ((size > 0 && have == size)); then
            # Complete already (stopped during the final sha256): asking for the bytes
            # after the end would get HTTP 416 on every attempt.
            log "$name: the partial download is complete; verifying it"
        else
            log "$name: downloading (attempt $attempt/$attempts)"
            touch -- "$partial"
            # <scheme>_get: https_get below; s3_get is components/weights/localai-fetch-s3.sh,
            # on PATH on hosts that read from S3 only; any other scheme is refused
            "${url%%:*}_get" "$url" "$partial" "$have" "$((size > 0 ? size - have : 0))" 2>"$partial.err" || rc=$?
            if ((rc == 22)) && grep -q 'error: 416' -- "$partial.err" && ((have > 0)); then
                log "$name: the server has no bytes after $have (HTTP 416); verifying what is there"
                rc=0
            fi
        fi
        if ((rc == 0)); then
            local got
            # once: the file may be gigabytes
            got=$(sha256_of "$partial")
            if [[ "$got" == "$sha" ]]; then
                rm -f -- "$partial.err"
                adopt "$name" "$partial" "$sha"
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
            # the server cannot resume: start over
            33 | 36)
                rm -f -- "$partial"
                why="the server cannot resume $name: starting over" ;;
            # the server announced more than the manifest's size
            63)
                rm -f -- "$partial"
                why="the server announced more than the $size bytes of $name: starting over" ;;
            23) die "cannot write $name.partial in $staging (disk full?): ${why:-curl exit 23}" ;;
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

declare -A listed=()
while IFS=$'\t' read -r name _ || [[ -n "${name:-}" ]]; do
    [[ -z "$name" || "$name" == \#* ]] || listed[$name]=1
done <"$manifest"
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
# Weights no configured model lists: LocalAI lists a loose file as a model and loads it by
# name with its defaults (context 512, mirostat 2, every layer on the GPU), past the memory
# plan. Removed, or with FETCH_RETIRE_DIR (an opt-in) moved there, outside MODELS_DIR.
shopt -s nullglob nocaseglob
for path in "$dir"/*.gguf "$dir"/*.ggml "$dir"/*.bin "$dir"/*.safetensors "$dir"/*.partial; do
    name=${path##*/}
    [[ -z "${listed[$name]:-}" ]] || continue
    if [[ -n "${FETCH_RETIRE_DIR:-}" && -f "$path" && ! -L "$path" ]]; then
        own_dir "$FETCH_RETIRE_DIR"
        mv -fT -- "$path" "$FETCH_RETIRE_DIR/$name"
        log "$name: no configured model uses it; moved to $FETCH_RETIRE_DIR"
    else
        rm -f -- "$path"
        log "$name: no configured model uses it; removed"
    fi
    rm -f -- "$state/$name"
done
shopt -u nullglob nocaseglob
if [[ -n "${FETCH_SUMMARY_FILE:-}" ]]; then
    printf 'fetched_bytes=%s verified_bytes=%s seconds=%s\n' "$fetched_bytes" "$verified_bytes" \
        "$((SECONDS - began))" >"$FETCH_SUMMARY_FILE"
fi
