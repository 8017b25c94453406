#!/usr/bin/env bash
# localai-sync-configs SRC_DIR MODELS_DIR: install the model YAMLs of SRC_DIR into
# MODELS_DIR. Configs a previous run installed that SRC_DIR no longer has are removed
# (their manifest is MODELS_DIR/.localai/managed-configs: a directory, which LocalAI does
# not list as a model); files this script did not install are never touched. Used by the
# EC2 host (localai-run) and, locally, by the container start.
set -euo pipefail

readonly PROG=localai-sync-configs
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

[[ $# -eq 2 && -d "$1" ]] || die "usage: $PROG SRC_DIR MODELS_DIR"
src=${1%/}
models=${2%/}
state="$models/.localai"
manifest="$state/managed-configs"
legacy="$models/.localai-managed-configs" # before it moved out of LocalAI's listing
install -d -m 0755 -- "$models" "$state"
shopt -s nullglob
wanted=()
for f in "$src"/*.yaml "$src"/*.yml; do wanted+=("${f##*/}"); done
((${#wanted[@]})) || die "no model YAMLs in $src"
for list in "$legacy" "$manifest"; do
    [[ -f "$list" ]] || continue
    while IFS= read -r old; do
        [[ -n "$old" && "$old" != */* && " ${wanted[*]} " != *" $old "* ]] || continue
        rm -f -- "${models:?}/$old"
        log "removed stale model config $old"
    done <"$list"
done
for name in "${wanted[@]}"; do install -m 0644 -- "$src/$name" "$models/$name"; done
printf '%s\n' "${wanted[@]}" >"$manifest.tmp"
chmod 0644 -- "$manifest.tmp"
mv -f -- "$manifest.tmp" "$manifest"
rm -f -- "$legacy"
log "model configs: ${wanted[*]}"
