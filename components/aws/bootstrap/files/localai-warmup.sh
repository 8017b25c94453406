#!/usr/bin/env bash
# localai-warmup: ExecStart of localai-warmup.service (oneshot, after localai.service).
# LocalAI v2.24 opens its port only once all download_files are downloaded, then loads a
# model on its first request. Wait for the port (LOCALAI_WARMUP_WAIT_S, default 2 h), then
# send one tiny chat completion to the default model. curl reads the key from the 0600
# header file written by localai-run: it is never on a command line.
set -euo pipefail

readonly PROG=localai-warmup
conf=${LOCALAI_CONF:-/etc/localai/localai.conf}
wait_s=${LOCALAI_WARMUP_WAIT_S:-7200}
poll_s=${LOCALAI_WARMUP_POLL_S:-5}
attempts=${LOCALAI_WARMUP_ATTEMPTS:-5}
request_timeout_s=${LOCALAI_WARMUP_REQUEST_TIMEOUT_S:-900}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

[[ -r "$conf" ]] || die "cannot read $conf"
# shellcheck source=/dev/null
. "$conf"
[[ -n "${LOCALAI_PORT:-}" && -n "${LOCALAI_RUN_DIR:-}" ]] || die "incomplete $conf"
# Embedded in JSON below: allow only safe characters.
[[ "${LOCALAI_DEFAULT_MODEL:-}" =~ ^[A-Za-z0-9._:/-]+$ ]] ||
    die "bad LOCALAI_DEFAULT_MODEL '${LOCALAI_DEFAULT_MODEL:-}' in $conf"
url="http://127.0.0.1:$LOCALAI_PORT"
header="$LOCALAI_RUN_DIR/auth.header"

# /readyz needs no key and answers 200 as soon as LocalAI listens.
start=$SECONDS
report=$((start + 60))
log "waiting up to ${wait_s}s for $url (model downloads keep the port closed)"
until [[ -r "$header" ]] && curl -sf -o /dev/null --max-time 5 "$url/readyz"; do
    ((SECONDS - start < wait_s)) || die "LocalAI did not open $url within ${wait_s}s"
    if ((SECONDS >= report)); then
        log "still waiting for $url ($((SECONDS - start))s of ${wait_s}s)"
        report=$((SECONDS + 60))
    fi
    sleep "$poll_s"
done
log "LocalAI is listening after $((SECONDS - start))s"
localai-timeline localai_listening || true

# Why a model did not load (CUDA out of memory, a bad GGUF, an illegal instruction): the
# llama.cpp backend's stderr, which LocalAI v2.24.0 logs only at debug level (with every
# prompt) but keeps in its process-manager state dir (pkg/model/process.go:
# process.WithTemporaryStateDir -> $TMPDIR/go-processmanager*/stderr). Read from there
# once a load failed, and written to the journal and to the container's own log stream
# (CloudWatch), without turning debug logging on.
backend_cause() {
    docker exec localai sh -c 'd=$(ls -td /tmp/go-processmanager*/ 2>/dev/null | head -n 1)
        [ -n "$d" ] && tail -n 20 "${d}stderr" | sed "s/^/localai-backend: /" | tee /proc/1/fd/2' \
        2>/dev/null || true
}

body=$(printf '{"model":"%s","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}' \
    "$LOCALAI_DEFAULT_MODEL")
out=$(mktemp)
trap 'rm -f -- "$out"' EXIT
for ((attempt = 1; attempt <= attempts; attempt++)); do
    t0=$SECONDS
    status=$(curl -sS -o "$out" -w '%{http_code}' --max-time "$request_timeout_s" \
        -H 'Content-Type: application/json' -H "@$header" --data-binary "$body" \
        "$url/v1/chat/completions" || true)
    if [[ "$status" == 200 ]]; then
        log "model '$LOCALAI_DEFAULT_MODEL' answered in $((SECONDS - t0))s: warm"
        localai-timeline first_token "seconds=$((SECONDS - t0))" || true
        exit 0
    fi
    log "warm-up request $attempt/$attempts: HTTP ${status:-none} $(head -c 300 -- "$out" | tr -d '\n')"
    if grep -q 'could not load model' -- "$out"; then
        cause=$(backend_cause)
        if [[ -n "$cause" ]]; then
            log "the model's backend said, last:"
            printf '%s\n' "$cause" | sed "s/^/$PROG: /" >&2
        fi
    fi
    ((attempt == attempts)) || sleep "$poll_s"
done
die "model '$LOCALAI_DEFAULT_MODEL' did not answer after $attempts attempts"
