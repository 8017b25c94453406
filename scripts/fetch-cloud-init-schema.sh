#!/usr/bin/env bash
# Fetch cloud-init's own JSON schema (schema-cloud-config-v1.json) from the Debian
# `cloud-init` package, without installing it, and print the schema's path.
#
# Usage: scripts/fetch-cloud-init-schema.sh [--force]
#
# Environment:
#   CLOUD_INIT_CACHE    cache directory (default: <repo>/.cache/cloud-init)
#   CLOUD_INIT_VERSION  exact Debian package version to fetch (default: apt's candidate)
#
# The tests read the schema from $CLOUD_INIT_SCHEMA or <repo>/.cache/cloud-init/.
# `apt-get download` needs package lists: when cloud-init is unknown to apt and we run
# as root, this script runs `apt-get update` once and retries.
set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cache_dir=${CLOUD_INIT_CACHE:-"$repo_root/.cache/cloud-init"}
schema_name="schema-cloud-config-v1.json"
target="$cache_dir/$schema_name"

log() { printf 'fetch-cloud-init-schema: %s\n' "$*" >&2; }

if [[ "${1:-}" != "--force" && -s "$target" ]]; then
    printf '%s\n' "$target"
    exit 0
fi

for tool in apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "error: '$tool' not found; this script needs a Debian/Ubuntu machine"
        exit 1
    fi
done

mkdir -p "$cache_dir"
work=$(mktemp -d "$cache_dir/.work.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

package=cloud-init
if [[ -n "${CLOUD_INIT_VERSION:-}" ]]; then
    package="cloud-init=$CLOUD_INIT_VERSION"
fi

download() {
    # apt-get download writes into the current directory; it runs as the _apt user
    # when it can, so make the work directory writable for it.
    chmod 0777 "$work"
    (cd "$work" && apt-get download -q "$package" >&2)
}

if ! download; then
    if [[ $(id -u) -eq 0 ]]; then
        log "apt-get download failed; running 'apt-get update' once and retrying"
        apt-get update -q >&2
        download
    else
        log "error: 'apt-get download $package' failed; run 'apt-get update' as root first"
        exit 1
    fi
fi

deb=$(find "$work" -maxdepth 1 -name 'cloud-init_*.deb' -print -quit)
if [[ -z "$deb" ]]; then
    log "error: apt-get download produced no cloud-init .deb"
    exit 1
fi

dpkg-deb -x "$deb" "$work/root"
schema=$(find "$work/root" -type f -name "$schema_name" -print -quit)
if [[ -z "$schema" ]]; then
    log "error: $schema_name not found in $(basename -- "$deb")"
    exit 1
fi

version=$(dpkg-deb -f "$deb" Version)
cp -- "$schema" "$target.tmp"
mv -- "$target.tmp" "$target"
printf '%s\n' "$version" >"$cache_dir/VERSION"
log "cloud-init $version schema -> $target"
printf '%s\n' "$target"
