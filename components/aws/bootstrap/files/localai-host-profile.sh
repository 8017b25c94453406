#!/usr/bin/env bash
# localai-host-profile: the first step of a fleet host's first boot (cloud-init runcmd).
# One launch template serves every type in fleet.instanceTypes, so the host finds out here
# which type EC2 gave it and what its weights volume is, then writes the settings file the
# units and scripts read:
#  1. the instance type, from IMDSv2 (meta-data/instance-type);
#  2. that type's profile, $LOCALAI_FLEET_DIR/<type>.conf: threads, CPU and memory limits,
#     GPU use and the model YAML set with its GPU layers, each computed by
#     components/sizing/planner.py for that type when the stack was deployed;
#  3. the weights volume: the launch template maps one EBS volume besides the root disk. On
#     Nitro every EBS volume is an NVMe controller whose model is "Amazon Elastic Block
#     Store" and whose serial is the volume id without its dash (udev names it
#     /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<serial>). Exactly one such disk
#     that does not hold / must exist: none after the wait, or several, is an error, and
#     nothing is guessed (localai-prepare-volume formats only a blank disk in any case).
# Output: $LOCALAI_CONF = base.conf + the profile + LOCALAI_VOLUME_DEVICE and
# LOCALAI_INSTANCE_TYPE, written atomically (0644, non-secret). Safe to run again.
set -euo pipefail

readonly PROG=localai-host-profile
fleet_dir=${LOCALAI_FLEET_DIR:-/etc/localai/fleet}
conf=${LOCALAI_CONF:-/etc/localai/localai.conf}
imds=${LOCALAI_IMDS_URL:-http://169.254.169.254}
sys_block=${LOCALAI_SYS_BLOCK:-/sys/block}
by_id=${LOCALAI_BY_ID_DIR:-/dev/disk/by-id}
wait_s=${LOCALAI_PROFILE_VOLUME_WAIT_S:-300}
poll_s=${LOCALAI_PROFILE_POLL_S:-5}
imds_attempts=${LOCALAI_IMDS_ATTEMPTS:-10}
readonly EBS_MODEL="Amazon Elastic Block Store"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

instance_type() {
    local token
    token=$(curl -sf -X PUT --max-time 5 -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
        "$imds/latest/api/token") || return 1
    curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" \
        "$imds/latest/meta-data/instance-type"
}

root_disk() { # the disk (nvme0n1) that holds /; LOCALAI_ROOT_DISK overrides (tests)
    if [[ -n "${LOCALAI_ROOT_DISK:-}" ]]; then
        printf '%s\n' "$LOCALAI_ROOT_DISK"
        return
    fi
    local source parent
    source=$(findmnt -no SOURCE /) || return 1
    parent=$(lsblk -no PKNAME -- "$source" | head -n 1)
    printf '%s\n' "${parent:-$(basename -- "$source")}"
}

trim() { sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -- "$1"; }

ebs_data_disks() { # prints the serial of every EBS disk except the root disk
    local root=$1 disk name
    for disk in "$sys_block"/nvme*n*; do
        [[ -e "$disk/device/model" && -e "$disk/device/serial" ]] || continue
        name=$(basename -- "$disk")
        [[ "$name" != "$root" ]] || continue
        [[ "$(trim "$disk/device/model")" == "$EBS_MODEL" ]] || continue
        trim "$disk/device/serial"
    done
}

[[ -r "$fleet_dir/base.conf" ]] || die "cannot read $fleet_dir/base.conf"

type=""
for ((attempt = 1; attempt <= imds_attempts; attempt++)); do
    type=$(instance_type) && [[ -n "$type" ]] && break
    type=""
    log "cannot read the instance type from IMDS (attempt $attempt/$imds_attempts)"
    sleep "$poll_s"
done
[[ -n "$type" ]] || die "no instance type from IMDS"
[[ "$type" =~ ^[a-z][a-z0-9-]*\.[a-z0-9]+$ ]] || die "unexpected instance type '$type'"
profile="$fleet_dir/$type.conf"
if [[ ! -r "$profile" ]]; then
    known=$(find "$fleet_dir" -maxdepth 1 -name '*.conf' ! -name base.conf -printf '%f ' |
        sed 's/\.conf//g')
    die "this instance is a $type, which has no profile in $fleet_dir (the fleet's types: $known)"
fi

root=$(root_disk) || die "cannot tell which disk holds /"
[[ -n "$root" ]] || die "cannot tell which disk holds /"
start=$SECONDS
while :; do
    mapfile -t serials < <(ebs_data_disks "$root")
    ((${#serials[@]} <= 1)) ||
        die "found ${#serials[@]} EBS volumes besides the root disk (${serials[*]}); the launch template maps one: refusing to guess"
    ((${#serials[@]} == 0)) || break
    ((SECONDS - start < wait_s)) || die "no EBS weights volume appeared within ${wait_s}s"
    sleep "$poll_s"
done
serial=${serials[0]}
[[ "$serial" =~ ^vol[0-9a-f]{8,17}$ ]] || die "unexpected EBS serial '$serial'"
device="$by_id/nvme-Amazon_Elastic_Block_Store_$serial"

tmp=$(mktemp -- "$conf.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
{
    cat -- "$fleet_dir/base.conf"
    grep -v '^#' -- "$profile"
    printf 'LOCALAI_VOLUME_DEVICE=%s\nLOCALAI_INSTANCE_TYPE=%s\n' "$device" "$type"
} >"$tmp"
chmod 0644 -- "$tmp"
mv -f -- "$tmp" "$conf"
trap - EXIT
log "$type: profile $profile, weights volume ${serial/vol/vol-} ($device)"
