#!/usr/bin/env bash
# localai-lifecycle heartbeat|complete: a fleet host's part in its launch lifecycle hook.
# The Auto Scaling group holds every new instance (and every warm-pool instance being
# started or warmed) in Pending:Wait / Warmed:Pending:Wait until the hook is completed:
#  complete (ExecStopPost of localai-warmup.service, drop-in 20-lifecycle.conf): CONTINUE
#    when the warm-up's one-token completion on the default model succeeded
#    ($SERVICE_RESULT=success, set by systemd for ExecStopPost), else ABANDON, and the
#    group replaces the instance. "No active Lifecycle Action found" (a reboot of an
#    InService instance) is not an error: nothing waits for this host.
#  heartbeat (localai-lifecycle-heartbeat.timer): while the warm-up is still running
#    (weights downloading), record a heartbeat so the hook's timeout does not abandon a
#    host that is making progress; the warm-up's own wait bounds how long that lasts.
# The role may call both on this group only (components/aws/launch.py).
set -euo pipefail

readonly PROG=localai-lifecycle
command=${1:-}
conf=${LOCALAI_CONF:-/etc/localai/localai.conf}
instance_id_file=${LOCALAI_INSTANCE_ID_FILE:-/var/lib/cloud/data/instance-id}
attempts=${LOCALAI_LIFECYCLE_ATTEMPTS:-5}
delay_s=${LOCALAI_LIFECYCLE_RETRY_S:-5}
PATH="$PATH:/snap/bin" # the aws CLI is a snap on Ubuntu

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

case "$command" in
heartbeat | complete) ;;
*) die "usage: $PROG heartbeat|complete" ;;
esac
if [[ ! -r "$conf" ]]; then
    # The profile step writes $conf; when it failed, base.conf still names the group, the
    # hook and the region, so the launch can be abandoned at once (not after the timeout).
    base=${LOCALAI_FLEET_DIR:-/etc/localai/fleet}/base.conf
    [[ -r "$base" ]] || die "cannot read $conf or $base"
    log "no $conf (the host profile step failed): using $base"
    conf=$base
fi
# shellcheck source=/dev/null
. "$conf"
[[ -n "${LOCALAI_AUTOSCALING_GROUP:-}" && -n "${LOCALAI_LIFECYCLE_HOOK:-}" ]] ||
    die "no LOCALAI_AUTOSCALING_GROUP / LOCALAI_LIFECYCLE_HOOK in $conf"
[[ -n "${LOCALAI_REGION:-}" ]] || die "no LOCALAI_REGION in $conf"
instance_id=$(head -n 1 -- "$instance_id_file" 2>/dev/null || true)
[[ "$instance_id" =~ ^i-[0-9a-f]{8,17}$ ]] || die "no instance id in $instance_id_file"
hook=(--region "$LOCALAI_REGION" --auto-scaling-group-name "$LOCALAI_AUTOSCALING_GROUP"
    --lifecycle-hook-name "$LOCALAI_LIFECYCLE_HOOK" --instance-id "$instance_id")

call() { # call ACTION ARGS...: retried; an inactive hook ends it quietly
    local out n
    for ((n = 1; n <= attempts; n++)); do
        if out=$(aws autoscaling "$@" "${hook[@]}" 2>&1); then
            return 0
        fi
        if [[ "$out" == *"No active Lifecycle Action found"* ]]; then
            log "no lifecycle action waits for $instance_id (already in service): nothing to do"
            return 0
        fi
        log "aws autoscaling $1 failed (attempt $n/$attempts): ${out:0:300}"
        ((n == attempts)) || sleep "$delay_s"
    done
    return 1
}

if [[ "$command" == heartbeat ]]; then
    state=$(systemctl show --property ActiveState --value localai-warmup.service || true)
    [[ "$state" == activating ]] || exit 0 # nothing in progress
    call record-lifecycle-action-heartbeat || die "could not record a heartbeat"
    log "heartbeat recorded: the warm-up is still running"
    exit 0
fi

result=ABANDON
[[ "${SERVICE_RESULT:-}" == success ]] && result=CONTINUE
log "warm-up ended (${SERVICE_RESULT:-unknown}, exit ${EXIT_STATUS:-?}): $result"
localai-timeline lifecycle_result "result=$result" || true
call complete-lifecycle-action --lifecycle-action-result "$result" ||
    die "could not complete the lifecycle action; the hook's timeout will abandon the instance"
