#!/usr/bin/env bash
# localai-prepare-volume DEVICE MOUNTPOINT: make the weights volume usable, idempotently.
# 1. Wait for DEVICE (EBS attaches after boot; a by-id symlink is followed).
# 2. Format ext4 ONLY if blank: no blkid/wipefs signature (filesystem, partition table,
#    RAID, LUKS, swap...), and every byte reads as zero (a filesystem in a partition whose
#    table was wiped, a backup GPT, end-of-disk RAID metadata, data anywhere: a volume the
#    stack created is new, so anything there was put there; read once, on first boot). Never when PREPARE_VOLUME_NEVER_FORMAT=1 (a volume the user
#    named). A format interrupted by a crash is recognised by our marker in the last 4 KiB
#    (outside the filesystem until the first mount) and redone. Reuse ext4; refuse the rest.
# 3. Keep exactly one fstab line for MOUNTPOINT (by UUID, nofail); other lines untouched.
# 4. Mount unless already mounted there.
# 5. Grow ext4 to the device's size (a grown EBS volume does not grow its fs): before
#    mounting when it is not mounted yet, online otherwise.
# Env: PREPARE_VOLUME_WAIT_S (300), PREPARE_VOLUME_POLL_S (1), PREPARE_VOLUME_LABEL
# (localai-models), PREPARE_VOLUME_DEVICE_TIMEOUT (300s), PREPARE_VOLUME_LOCK,
# PREPARE_VOLUME_LOCK_WAIT_S (600), FSTAB, PREPARE_VOLUME_NEVER_FORMAT (0).
# MOUNTPOINT: absolute, no spaces, not / nor a system directory (/etc, /usr/..., /var).
# Exit: 0 ready, 2 usage, 3 device timeout, 4 refused (foreign data/mount), 1 other.
set -euo pipefail

readonly PROG=localai-prepare-volume EXIT_USAGE=2 EXIT_TIMEOUT=3 EXIT_REFUSED=4
wait_s=${PREPARE_VOLUME_WAIT_S:-300}
poll_s=${PREPARE_VOLUME_POLL_S:-1}
label=${PREPARE_VOLUME_LABEL:-localai-models}
device_timeout=${PREPARE_VOLUME_DEVICE_TIMEOUT:-300s}
lock_file=${PREPARE_VOLUME_LOCK:-/run/localai-prepare-volume.lock}
lock_wait_s=${PREPARE_VOLUME_LOCK_WAIT_S:-600}
fstab=${FSTAB:-/etc/fstab}
never_format=${PREPARE_VOLUME_NEVER_FORMAT:-0}
readonly MIB=1048576 MARKER="LOCALAI-PREPARE-VOLUME-FORMAT-IN-PROGRESS"

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    local code=$1
    shift
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit "$code"
}

[[ $# -eq 2 && -n "$1" ]] || die "$EXIT_USAGE" "usage: $PROG DEVICE MOUNTPOINT"
device=$1
mount_point=$2
while [[ "$mount_point" == */ && "$mount_point" != / ]]; do mount_point=${mount_point%/}; done
[[ "$mount_point" == /?* && "$mount_point" != *[[:space:]\\]* ]] ||
    die "$EXIT_USAGE" "MOUNTPOINT must be an absolute path other than /, without spaces: '$2'"
# Never over a system directory, by its name or through a symlink or '..': the mount would
# hide what the OS runs from (this is a root tool; a typo must not cost the host).
for path in "$mount_point" "$(realpath -m -- "$mount_point")"; do
    case $path in
    / | /bin | /boot | /dev | /etc | /home | /lib | /lib32 | /lib64 | /libx32 | /media | /mnt | \
        /opt | /proc | /root | /run | /sbin | /snap | /srv | /sys | /tmp | /usr | /var | \
        /var/cache | /var/lib | /var/log | /var/tmp | /bin/* | /boot/* | /dev/* | /etc/* | \
        /lib/* | /lib32/* | /lib64/* | /libx32/* | /proc/* | /sbin/* | /sys/* | /usr/*)
        die "$EXIT_USAGE" "MOUNTPOINT '$2' is (or resolves to) the system path $path; use a directory of its own such as /var/lib/localai"
        ;;
    esac
done
[[ "$wait_s" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "PREPARE_VOLUME_WAIT_S must be whole seconds: '$wait_s'"
[[ "$lock_wait_s" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "PREPARE_VOLUME_LOCK_WAIT_S must be whole seconds: '$lock_wait_s'"

# cloud-init's runcmd and localai.service both run this: one at a time.
exec 9>>"$lock_file"
flock -w "$lock_wait_s" 9 || die 1 "another localai-prepare-volume still holds $lock_file after ${lock_wait_s}s; nothing was touched"

# 1. Wait for the device.
if [[ ! -b "$device" ]]; then
    log "waiting up to ${wait_s}s for $device"
    start=$SECONDS
    report=$((start + 15))
    until [[ -b "$device" ]]; do
        ((SECONDS - start < wait_s)) ||
            die "$EXIT_TIMEOUT" "timed out after ${wait_s}s waiting for block device $device (is the volume attached?)"
        if ((SECONDS >= report)); then
            log "still waiting for $device ($((SECONDS - start))s of ${wait_s}s)"
            report=$((SECONDS + 15))
        fi
        sleep "$poll_s"
    done
fi
dev=$(readlink -f -- "$device")
[[ -b "$dev" ]] || die 1 "$device resolves to $dev, not a block device"
log "device $device ($dev) is present"
settle() { # let udev finish with the device (by-uuid links, blkid's view) after a change
    if command -v udevadm >/dev/null; then udevadm settle --timeout=30 || true; fi
}
settle
dev_id=$(mountpoint -x -- "$dev")
# Before touching anything: the mount point must be free or already hold this device.
if mountpoint -q -- "$mount_point" && [[ "$(mountpoint -d -- "$mount_point")" != "$dev_id" ]]; then
    die "$EXIT_REFUSED" "$mount_point is already mounted from device $(mountpoint -d -- "$mount_point"), not $dev ($dev_id)"
fi

# 2. Probe the device itself (blkid -p: no cache). Status 2 = nothing found; anything but
#    0 or 2 (e.g. 8: several signatures) counts as "not blank".
probe() {
    rc=0
    info=$(blkid -p -o export -- "$dev") || rc=$?
    fs_type=$(sed -n 's/^TYPE=//p' <<<"$info")
    pt_type=$(sed -n 's/^PTTYPE=//p' <<<"$info")
    uuid=$(sed -n 's/^UUID=//p' <<<"$info")
}
dev_bytes=$(blockdev --getsize64 "$dev")
marker_at=$((dev_bytes / 4096 - 1)) # the last 4 KiB block
marked() {
    cmp -s -n ${#MARKER} -- <(dd if="$dev" bs=4096 skip="$marker_at" count=1 status=none) \
        <(printf '%s' "$MARKER")
}
all_zero() { # 0: every byte is zero; 1: $data_at is the first that is not; 2: unreadable
    local out rc=0
    out=$(cmp -n "$dev_bytes" -- "$dev" /dev/zero 2>&1) || rc=$?
    ((rc != 0)) || return 0
    data_at=$(sed -n 's/.* differ: [a-z]* \([0-9]*\),.*/\1/p' <<<"$out")
    [[ -n "$data_at" ]] && return 1
    log "cannot read all of $dev: ${out:-cmp exit $rc}"
    return 2
}
probe
interrupted=0
if marked && { ((rc != 0)) || [[ "$fs_type" == ext4 && "$label" == "$(sed -n 's/^LABEL=//p' <<<"$info")" ]]; }; then
    # Our marker is written before mkfs and cleared before the first mount: nothing of
    # anyone's was ever on this volume.
    log "$dev holds an interrupted format of ours (marker present): formatting it again"
    interrupted=1
fi
if ((rc == 2 || interrupted)); then
    if ((!interrupted)); then
        signatures=$(wipefs --no-act --noheadings --output TYPE,OFFSET -- "$dev") || die 1 "wipefs cannot read $dev"
        [[ -z "$signatures" ]] ||
            die "$EXIT_REFUSED" "$dev is not blank (wipefs: ${signatures//$'\n'/, }); refusing to format it"
        ((dev_bytes >= 8 * MIB)) || die "$EXIT_REFUSED" "$dev is only $dev_bytes bytes; refusing to format it"
        log "$dev has no known signature: checking that all of its $dev_bytes bytes are zero"
        scan=0
        all_zero || scan=$?
        ((scan != 2)) || die 1 "cannot read all of $dev to check it is blank; nothing was formatted"
        ((scan == 0)) ||
            die "$EXIT_REFUSED" "$dev has no known signature but holds data at byte $data_at of $dev_bytes (a partition whose table was wiped, a backup partition table, RAID metadata, another system's data?); refusing to format it"
        [[ "$never_format" != 1 ]] ||
            die "$EXIT_REFUSED" "$dev is blank, but it is a volume you named (localai:weightsVolumeId): refusing to format it; is it the right volume?"
    fi
    log "$dev is blank: creating ext4 filesystem '$label'"
    printf '%s' "$MARKER" | dd of="$dev" bs=4096 seek="$marker_at" conv=notrunc,fsync status=none ||
        die 1 "cannot write to $dev"
    # 1 MiB short of the device: the marker stays outside the filesystem; step 5 grows it.
    mkfs.ext4 -q -F -L "$label" -m 1 -- "$dev" $(((dev_bytes - MIB) / 1024))k
    settle
    probe
    [[ $rc -eq 0 && "$fs_type" == ext4 ]] || die 1 "no ext4 filesystem found on $dev after mkfs.ext4"
    dd if=/dev/zero of="$dev" bs=4096 seek="$marker_at" count=1 conv=notrunc,fsync status=none ||
        die 1 "cannot clear the format marker on $dev"
elif ((rc != 0)); then
    die "$EXIT_REFUSED" "blkid cannot identify $dev unambiguously (status $rc); refusing to touch it"
elif [[ -n "$pt_type" ]]; then
    die "$EXIT_REFUSED" "$dev holds a '$pt_type' partition table; refusing to format or mount it"
elif [[ "$fs_type" != ext4 ]]; then
    die "$EXIT_REFUSED" "$dev holds '${fs_type:-unknown}', not ext4; refusing to format or mount it"
else
    log "$dev already holds an ext4 filesystem: keeping its data"
fi
[[ "$uuid" =~ ^[0-9A-Fa-f-]+$ ]] || die 1 "cannot read the filesystem UUID of $dev ('$uuid')"

# 3. fstab: the first line naming this mount point or UUID is replaced, later ones dropped,
#    everything else kept byte for byte; appended when absent. Rewritten only on change.
entry="UUID=$uuid $mount_point ext4 defaults,nofail,x-systemd.device-timeout=$device_timeout 0 2"
[[ -e "$fstab" ]] || : >"$fstab"
new_fstab=$(mktemp "$fstab.XXXXXX")
trap 'rm -f -- "$new_fstab"' EXIT
awk -v mp="$mount_point" -v id="UUID=$uuid" -v entry="$entry" '
    /^[[:space:]]*(#|$)/ { print; next }
    {
        target = $2
        while (length(target) > 1 && target ~ /\/$/) target = substr(target, 1, length(target) - 1)
        if (target == mp || $1 == id) { if (!done) print entry; done = 1; next }
        print
    }
    END { if (!done) print entry }
' "$fstab" >"$new_fstab"
if cmp -s -- "$fstab" "$new_fstab"; then
    log "$fstab already has: $entry"
else
    chmod --reference="$fstab" -- "$new_fstab"
    mv -f -- "$new_fstab" "$fstab"
    log "$fstab now has: $entry"
fi

# 5. (helper) An EBS volume grown by `pulumi up` keeps its old filesystem size until
#    resized. Less than a MiB of slack is rounding.
grow_needed() {
    local dev_bytes fs_header block_size block_count
    dev_bytes=$(blockdev --getsize64 "$dev")
    fs_header=$(dumpe2fs -h "$dev" 2>/dev/null) || die 1 "dumpe2fs cannot read $dev"
    block_size=$(sed -n 's/^Block size:[[:space:]]*//p' <<<"$fs_header")
    block_count=$(sed -n 's/^Block count:[[:space:]]*//p' <<<"$fs_header")
    [[ "$block_size" =~ ^[0-9]+$ && "$block_count" =~ ^[0-9]+$ ]] ||
        die 1 "cannot read the filesystem size of $dev"
    fs_bytes=$((block_size * block_count))
    grow_to=$dev_bytes
    ((dev_bytes - fs_bytes >= 1048576))
}

# (helper) e2fsck before an offline grow. -p repairs what is safe without asking; a power cut
# during an earlier grow can leave what -p will not touch, and then every later start would
# refuse. The filesystem is ours (our label, on the volume the stack gave this host), so
# what -p leaves is repaired with -y, and logged.
check_unmounted() {
    local out rc=0
    out=$(e2fsck -f -p "$dev" 2>&1) || rc=$?
    ((rc & 4)) || return 0 # 0 clean, 1 or 2 corrected
    [[ "$(blkid -p -s LABEL -o value -- "$dev")" == "$label" ]] ||
        die 1 "e2fsck -p found problems on $dev it will not repair, and it is not our filesystem ('$label'); check it by hand: $(tail -n 1 <<<"$out")"
    log "WARNING: e2fsck -p left problems on $dev ($(tail -n 1 <<<"$out")); repairing with e2fsck -y"
    rc=0
    out=$(e2fsck -f -y "$dev" 2>&1) || rc=$?
    printf '%s\n' "$out" | tail -n 20 | sed "s/^/$PROG: e2fsck: /"
    ((!(rc & 4))) || die 1 "e2fsck -y could not repair $dev (exit $rc); check it by hand"
    log "e2fsck -y repaired $dev (exit $rc)"
}

# 4. Mount the device there, unless it is already mounted there.
mkdir -p -- "$mount_point"
if mountpoint -q -- "$mount_point"; then
    log "$dev is already mounted at $mount_point"
    if grow_needed; then
        log "growing the mounted filesystem on $dev from $fs_bytes to $grow_to bytes"
        if ! out=$(resize2fs "$dev" 2>&1); then
            log "WARNING: could not grow the filesystem online ($(tail -n 1 <<<"$out")); it keeps $fs_bytes bytes until it is next prepared unmounted (reboot)"
        fi
    fi
else
    if grow_needed; then
        log "growing the filesystem on $dev from $fs_bytes to $grow_to bytes"
        check_unmounted
        resize2fs "$dev" >/dev/null 2>&1 || die 1 "resize2fs could not grow the filesystem on $dev"
        settle
    fi
    # The device itself, not the fstab line's UUID: right after mkfs or a resize, udev may
    # not have the by-uuid link yet, and with nofail `mount` then exits 0 having mounted
    # nothing. The fstab line is for later boots.
    mount -t ext4 -- "$dev" "$mount_point"
    [[ "$(mountpoint -d -- "$mount_point")" == "$dev_id" ]] || die 1 "$mount_point is not backed by $dev after mount"
    log "mounted $dev (UUID=$uuid) at $mount_point"
fi
log "ready: $mount_point"
