#!/usr/bin/env bash
# localai-timeline PHASE [KEY=VALUE...]: one line of the boot timeline, e.g.
#   localai-boot: boot=<boot id> phase=image_present t=41.2 source=kept bytes=1234
# t is seconds since the kernel booted (/proc/uptime). The line goes to stderr (the journal
# of the unit that called it) and, best effort, to CloudWatch: stream <instance id>/boot of
# LOCALAI_LOG_GROUP. scripts/coldstart-report.sh reads those lines back into a table.
# Env (tests): LOCALAI_UPTIME_FILE, LOCALAI_BOOT_ID_FILE, LOCALAI_INSTANCE_ID_FILE.
set -uo pipefail

phase=${1:?usage: localai-timeline PHASE [KEY=VALUE...]}
shift
[[ "$phase" =~ ^[a-z_]+$ ]] || { echo "localai-timeline: bad phase '$phase'" >&2; exit 2; }
for pair in "$@"; do
    [[ "$pair" =~ ^[a-z_]+=[A-Za-z0-9._:/-]*$ ]] || { echo "localai-timeline: bad field '$pair'" >&2; exit 2; }
done
uptime=$(cut -d' ' -f1 "${LOCALAI_UPTIME_FILE:-/proc/uptime}")
boot=$(head -n 1 "${LOCALAI_BOOT_ID_FILE:-/proc/sys/kernel/random/boot_id}")
line="localai-boot: boot=$boot phase=$phase t=$uptime${*:+ $*}"
printf '%s\n' "$line" >&2

if [[ -n "${LOCALAI_LOG_GROUP:-}" && -n "${LOCALAI_REGION:-}" ]] && command -v aws >/dev/null; then
    instance=$(head -n 1 "${LOCALAI_INSTANCE_ID_FILE:-/var/lib/cloud/data/instance-id}" 2>/dev/null || hostname)
    stream="$instance/boot"
    aws logs create-log-stream --region "$LOCALAI_REGION" --log-group-name "$LOCALAI_LOG_GROUP" \
        --log-stream-name "$stream" >/dev/null 2>&1 || true
    aws logs put-log-events --region "$LOCALAI_REGION" --log-group-name "$LOCALAI_LOG_GROUP" \
        --log-stream-name "$stream" \
        --log-events "[{\"timestamp\":$(date +%s%3N),\"message\":\"$line\"}]" >/dev/null 2>&1 || true
fi
exit 0
