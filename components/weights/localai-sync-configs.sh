#!/usr/bin/env bash
# localai-sync-configs SRC_DIR MODELS_DIR [STATE_DIR]: install the model YAMLs of SRC_DIR
# into MODELS_DIR. Configs a previous run installed that SRC_DIR no longer has are removed
# (their list is STATE_DIR/managed-configs); files this script did not install are never
# touched. Used by the EC2 host (localai-run) and, locally, by the container start.
#
# MODELS_DIR is writable by the LocalAI container and this runs as root on the EC2 host, so
# nothing there is opened for writing or followed: each config is written in STATE_DIR (a
# directory only this user may write: outside the container's reach on EC2; default
# MODELS_DIR/.localai, where the container runs this itself) and moved in with rename(2),
# which replaces a planted link instead of writing through it.
set -euo pipefail

readonly PROG=localai-sync-configs
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

[[ ($# -eq 2 || $# -eq 3) && -d "$1" ]] || die "usage: $PROG SRC_DIR MODELS_DIR [STATE_DIR]"
src=${1%/}
models=${2%/}
state=${3:-$models/.localai}
state=${state%/}
manifest="$state/managed-configs"
legacy_lists=("$models/.localai-managed-configs" "$models/.localai/managed-configs")
[[ ! -L "$models" ]] || die "$models is a symbolic link: refusing to use it"
install -d -m 0755 -- "$models"
[[ ! -L "$state" ]] || die "$state is a symbolic link: refusing to use it"
[[ -d "$state" ]] || mkdir -m 0700 -- "$state"
[[ -d "$state" && ! -L "$state" && -O "$state" ]] || die "$state is not a directory of this user"
chmod 0700 -- "$state"
[[ "$(stat -c %d -- "$state")" == "$(stat -c %d -- "$models")" ]] ||
    die "$state and $models are on different filesystems: configs could not be renamed into place"
shopt -s nullglob
wanted=()
for f in "$src"/*.yaml "$src"/*.yml; do wanted+=("${f##*/}"); done
((${#wanted[@]})) || die "no model YAMLs in $src"
for list in "${legacy_lists[@]}" "$manifest"; do
    [[ -f "$list" && ! -L "$list" ]] || continue
    while IFS= read -r old; do
        [[ -n "$old" && "$old" != */* && "$old" != .* && " ${wanted[*]} " != *" $old "* ]] || continue
        rm -f -- "${models:?}/$old" # removes a link itself, never what it points to
        log "removed stale model config $old"
    done <"$list"
done
for name in "${wanted[@]}"; do
    install -m 0644 -- "$src/$name" "$state/$name.new"
    mv -fT -- "$state/$name.new" "$models/$name"
done
printf '%s\n' "${wanted[@]}" >"$manifest.tmp"
chmod 0644 -- "$manifest.tmp"
mv -fT -- "$manifest.tmp" "$manifest"
for list in "${legacy_lists[@]}"; do [[ "$list" == "$manifest" ]] || rm -f -- "$list"; done
log "model configs: ${wanted[*]}"
