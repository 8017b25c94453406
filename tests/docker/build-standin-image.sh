#!/usr/bin/env bash
# Build the LocalAI stand-in image for the Docker Engine tests, offline from any registry:
# a minimal Debian bookworm rootfs (debootstrap, from this machine's own Debian apt
# mirror), python3 with llama-cpp-python[server] (the AVX2 wheel scripts/test.sh built)
# and tests/docker/standin.py as /build/entrypoint.sh, then `docker import`.
# Usage: build-standin-image.sh TAG WHEEL_DIR   (DOCKER_HOST selects the daemon)
# The image tarball is cached in ~/.cache/localai/standin/, keyed by this script, the
# stand-in and the wheel, so later runs only import it.
set -euo pipefail

tag=$1
wheels=$2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { printf 'build-standin-image: %s\n' "$*" >&2; exit 1; }
log() { printf 'build-standin-image: %s\n' "$*" >&2; }

wheel=$(compgen -G "$wheels/llama_cpp_python-*.whl" | head -n 1) || die "no llama-cpp-python wheel in $wheels"
key=$(cat "${BASH_SOURCE[0]}" "$here/standin.py" "$wheel" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/localai/standin"
tarball="$cache/standin-$key.tar"
if docker image inspect "$tag" >/dev/null 2>&1 &&
    [[ "$(docker image inspect --format '{{index .Config.Labels "standin.key"}}' "$tag" 2>/dev/null)" == "$key" ]]; then
    exit 0
fi
if [[ ! -s "$tarball" ]]; then
    command -v debootstrap >/dev/null || die "debootstrap is needed (apt-get install debootstrap)"
    # This machine's Debian mirror, as its apt sources name it (deb822 or one-line format).
    mirror=$(
        { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
          grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } |
            grep -m1 '/debian/\?$' || true
    )
    [[ -n "$mirror" ]] || die "no Debian mirror found in this machine's apt sources"
    root=$(mktemp -d)
    trap 'rm -rf -- "$root"' EXIT
    log "debootstrap bookworm into $root"
    debootstrap --variant=minbase --include=python3,python3-venv,curl,ca-certificates,libgomp1 \
        bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; die "debootstrap failed"; }
    rm -f "$root.log"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # Wheels are fetched by this machine's pip (its index settings), installed offline.
    mkdir -p "$root/tmp/wheels"
    cp "$wheel" "$root/tmp/wheels/"
    "${PYTHON:-python3}" -m pip download --quiet --dest "$root/tmp/wheels" --find-links "$wheels" \
        --only-binary=:all: "$(basename "$wheel" | sed 's/-py3-none.*//; s/_/-/g; s/-\([0-9]\)/[server]==\1/')" pyyaml ||
        die "pip download failed"
    chroot "$root" python3 -m venv /opt/standin
    chroot "$root" /opt/standin/bin/pip install --quiet --no-index --find-links /tmp/wheels \
        "llama-cpp-python[server]" pyyaml || die "pip install failed in the rootfs"
    rm -rf "$root/tmp/wheels"
    mkdir -p "$root/build/models"
    cp "$here/standin.py" "$root/build/standin.py"
    printf '#!/bin/bash\nexec /opt/standin/bin/python /build/standin.py "$@"\n' >"$root/build/entrypoint.sh"
    chmod 0755 "$root/build/entrypoint.sh"
    mkdir -p "$cache"
    tar -C "$root" --numeric-owner -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
fi
log "importing $tarball as $tag"
docker import \
    --change 'WORKDIR /build' \
    --change 'ENTRYPOINT ["/build/entrypoint.sh"]' \
    --change 'EXPOSE 8080' \
    --change 'ENV PATH=/opt/standin/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL standin.key=$key" \
    "$tarball" "$tag" >/dev/null
