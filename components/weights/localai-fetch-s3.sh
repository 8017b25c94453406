#!/usr/bin/env bash
# s3_get URL OUTPUT FROM LIMIT: the weights fetcher's s3:// path, installed on PATH as
# s3_get on hosts that read their weights from S3; localai-fetch-weights.sh runs it (its
# stderr becomes the error message; progress goes to the fetcher's log on fd 7).
# Appends bytes FROM..FROM+LIMIT-1 of s3://BUCKET/KEY to OUTPUT with the aws CLI (SigV4
# with its own credential chain: on EC2 the instance role's, from IMDSv2), in parts of
# FETCH_S3_PART_BYTES fetched FETCH_S3_PARALLEL at a time with ranged GETs and appended in
# order, so OUTPUT always holds a prefix of the object and a killed
# fetch resumes after its last complete part. A part that comes back short is an error.
# Exit 0, 23 (OUTPUT cannot be written), 28 (a timeout) or 1.
# Env: FETCH_S3_PARALLEL (4), FETCH_S3_PART_BYTES (67108864), FETCH_S3_REGION (optional:
#      the bucket's region, else the aws CLI's), FETCH_S3_ENDPOINT_URL (optional, https://
#      only: another S3 endpoint, such as a test server), FETCH_CONNECT_TIMEOUT_S (30),
#      FETCH_STALL_S (60: the aws CLI's read timeout).
set -euo pipefail
umask 022

readonly PROG=localai-fetch
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
fail() {
    printf '%s\n' "$*" >&2
    exit 1
}
[[ $# -eq 4 ]] || fail "usage: s3_get URL OUTPUT FROM LIMIT"
connect_timeout=${FETCH_CONNECT_TIMEOUT_S:-30}
stall_s=${FETCH_STALL_S:-60}
s3_parallel=${FETCH_S3_PARALLEL:-4}
s3_part=${FETCH_S3_PART_BYTES:-67108864}
for var in connect_timeout stall_s s3_parallel s3_part; do
    [[ "${!var}" =~ ^[0-9]+$ ]] || fail "$var must be a whole number: '${!var}'"
done
((s3_parallel >= 1 && s3_parallel <= 64)) || fail "FETCH_S3_PARALLEL must be 1 to 64: '$s3_parallel'"
((s3_part >= 1)) || fail "FETCH_S3_PART_BYTES must be at least 1: '$s3_part'"
[[ -z "${FETCH_S3_ENDPOINT_URL:-}" || "$FETCH_S3_ENDPOINT_URL" =~ ^https://[^[:space:]]+$ ]] ||
    fail "FETCH_S3_ENDPOINT_URL must be an https:// URL: '$FETCH_S3_ENDPOINT_URL'"
[[ -z "${FETCH_S3_REGION:-}" || "$FETCH_S3_REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] ||
    fail "FETCH_S3_REGION is not a region name: '$FETCH_S3_REGION'"
command -v aws >/dev/null || fail "there is no aws CLI to read s3:// URLs"
[[ "$3" =~ ^[0-9]+$ ]] || fail "FROM must be a whole number: '$3'"
[[ "$4" =~ ^[1-9][0-9]*$ ]] || fail "an s3:// file needs its size in the manifest (LIMIT '$4')"
{ true >&7; } 2>/dev/null || exec 7>&2 # progress: the fetcher's log (fd 7), else stderr
file_size() { stat -c %s -- "$1"; }

# s3://BUCKET/KEY: a bucket name as S3 allows it (lowercase, digits, '.', '-'; 3-63) and a
# key of printable characters without a leading '/'.
readonly S3_URL='^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/([^/[:cntrl:]][^[:cntrl:]]*)$'

s3_get() { # URL OUTPUT FROM LIMIT: append bytes FROM..FROM+LIMIT-1 of s3://BUCKET/KEY to
    # OUTPUT, FETCH_S3_PARALLEL ranged GETs at a time; each complete part is appended in
    # order, so what OUTPUT holds is always a prefix of the object. Returns 0, 23 (OUTPUT
    # cannot be written), 28 (a timeout) or 1, with the aws CLI's message on stderr.
    local url=$1 out=$2 from=$3 limit=$4
    [[ "$url" =~ $S3_URL ]] || { echo "not an s3://BUCKET/KEY URL: $url" >&2; return 1; }
    local bucket=${BASH_REMATCH[1]} key=${BASH_REMATCH[2]}
    local aws_args=(s3api get-object --bucket "$bucket" --key "$key"
        --cli-connect-timeout "$connect_timeout" --cli-read-timeout "$stall_s")
    [[ -z "${FETCH_S3_ENDPOINT_URL:-}" ]] || aws_args+=(--endpoint-url "$FETCH_S3_ENDPOINT_URL")
    [[ -z "${FETCH_S3_REGION:-}" ]] || aws_args+=(--region "$FETCH_S3_REGION")
    local end=$((from + limit)) start=$from first last i part ok why
    rm -f -- "$out".part*
    while ((start < end)); do
        local pids=() ranges=()
        first=$start
        for ((i = 0; i < s3_parallel && start < end; i++)); do
            last=$((start + s3_part - 1))
            ((last < end)) || last=$((end - 1))
            aws "${aws_args[@]}" --range "bytes=$start-$last" "$out.part$i" >/dev/null 2>"$out.part$i.err" &
            pids+=("$!")
            ranges+=("$start-$last")
            start=$((last + 1))
        done
        log "s3: bytes $first-$last of $url (${#pids[@]} parts)" 2>&7
        ok=1
        why=""
        for i in "${!pids[@]}"; do
            part="$out.part$i"
            if ! wait "${pids[$i]}"; then
                ((ok == 0)) || why=$(grep -v '^[[:space:]]*$' -- "$part.err" | tail -n 1)
                ok=0
            elif ((ok)); then
                if (($(file_size "$part") != ${ranges[$i]#*-} - ${ranges[$i]%-*} + 1)); then
                    why="s3 sent $(file_size "$part") bytes for the range ${ranges[$i]}"
                    ok=0
                elif ! cat -- "$part" >>"$out"; then
                    rm -f -- "$out".part*
                    return 23
                fi
            fi
        done
        rm -f -- "$out".part*
        if ((ok == 0)); then
            echo "${why:-the aws CLI failed}" >&2
            [[ "$why" != *[Tt]imeout* ]] || return 28
            return 1
        fi
    done
}

s3_get "$@"
