#!/usr/bin/env bash
# Install the pinned Pulumi CLI into a user-owned directory (no sudo) and print that
# directory; stdout is only the path, messages go to stderr.
#
#   dir="$(scripts/install-pulumi.sh)" && export PATH="$dir:$PATH"
#
# The version and checksums come from scripts/pulumi-cli.release. The archive is
# verified by SHA-256 (pinned there, or from the release's checksums file over HTTPS)
# before anything is unpacked; it is unpacked beside the target and renamed into place,
# so a failed download, a checksum mismatch or an interrupted run leaves nothing behind.
#
# Environment:
#   LOCALAI_TOOLS_DIR     where tools go (default ${XDG_DATA_HOME:-~/.local/share}/localai/tools)
#   PULUMI_RELEASES_URL   a mirror of the GitHub release downloads; https:// only
#                         (default https://github.com/pulumi/pulumi/releases/download)
#   LOCALAI_PULUMI_RELEASE  another release file (default scripts/pulumi-cli.release)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { printf 'install-pulumi: %s\n' "$*" >&2; exit 1; }

release_file="${LOCALAI_PULUMI_RELEASE:-$here/pulumi-cli.release}"
[ -r "$release_file" ] || die "cannot read $release_file"
# KEY=value lines only; read them as data, never run them.
release_value() {
  local key="$1" line
  line="$(grep -E "^${key}=" "$release_file" | tail -n 1 || true)"
  printf '%s' "${line#*=}"
}
version="$(release_value VERSION)"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$release_file: VERSION '$version' is not X.Y.Z"

kernel="$(uname -s)"
machine="$(uname -m)"
case "$kernel" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) die "no Pulumi CLI build for this OS ($kernel): install it yourself (https://www.pulumi.com/docs/iac/download-install/) and run again" ;;
esac
case "$machine" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no Pulumi CLI build for this CPU ($machine on $kernel): install it yourself (https://www.pulumi.com/docs/iac/download-install/) and run again" ;;
esac

base="${PULUMI_RELEASES_URL:-https://github.com/pulumi/pulumi/releases/download}"
case "$base" in
  https://*) ;;
  *) die "PULUMI_RELEASES_URL must be an https:// URL (got '$base')" ;;
esac
base="${base%/}"

tools="${LOCALAI_TOOLS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/localai/tools}"
dest="$tools/pulumi-v$version"
if [ -x "$dest/pulumi" ]; then
  printf '%s\n' "$dest"
  exit 0
fi

command -v curl >/dev/null 2>&1 || die "curl is needed to download the Pulumi CLI"
command -v tar >/dev/null 2>&1 || die "tar is needed to unpack the Pulumi CLI"
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "sha256sum or shasum is needed to verify the Pulumi CLI"
fi

mkdir -p "$tools"
work="$(mktemp -d "$tools/.pulumi-v$version.partial.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT

fetch() { # URL FILE: HTTPS only (redirects too), bounded time, a few retries.
  curl --fail --silent --show-error --location \
    --proto '=https' --proto-redir '=https' --tlsv1.2 \
    --connect-timeout 20 --max-time 900 --retry 2 --retry-delay 2 \
    --output "$2" "$1" 2>"$work/curl.err"
}
curl_error() { tail -n 1 "$work/curl.err" 2>/dev/null | sed 's/^curl: //'; }

archive="pulumi-v${version}-${os}-${arch}.tar.gz"
url="$base/v$version/$archive"
printf 'install-pulumi: downloading the Pulumi CLI v%s for %s-%s\n' "$version" "$os" "$arch" >&2
fetch "$url" "$work/$archive" || die "download of $url failed: $(curl_error); nothing was installed"

expected="$(release_value "SHA256_${os}_${arch}")"
source_of_hash="the pinned hash in $(basename "$release_file")"
if [ -z "$expected" ]; then
  sums="pulumi-${version}-checksums.txt"
  fetch "$base/v$version/$sums" "$work/$sums" ||
    die "download of $base/v$version/$sums failed: $(curl_error); nothing was installed"
  expected="$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1; exit }' "$work/$sums")"
  [ -n "$expected" ] || die "$sums does not list $archive; nothing was installed"
  source_of_hash="$sums"
fi
expected="$(printf '%s' "$expected" | tr 'A-F' 'a-f')"
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die "the expected SHA-256 for $archive is not 64 hex digits; nothing was installed"
actual="$(sha256 "$work/$archive")"
[ "$actual" = "$expected" ] ||
  die "checksum mismatch for $archive: $source_of_hash says $expected, the download is $actual; nothing was installed"

mkdir "$work/unpacked"
tar -xzf "$work/$archive" -C "$work/unpacked" 2>"$work/tar.err" ||
  die "could not unpack $archive: $(tail -n 1 "$work/tar.err"); nothing was installed"
[ -x "$work/unpacked/pulumi/pulumi" ] || die "$archive has no pulumi/pulumi; nothing was installed"
"$work/unpacked/pulumi/pulumi" version >/dev/null 2>&1 ||
  die "the downloaded pulumi does not run on this machine; nothing was installed"

# Same filesystem: the rename is atomic. (If a concurrent run got there first, keep its
# copy: moving onto an existing directory would nest this one inside it.)
if [ ! -e "$dest" ]; then
  mv -- "$work/unpacked/pulumi" "$dest" || die "could not move the Pulumi CLI into $dest"
fi
[ -x "$dest/pulumi" ] || die "$dest exists but holds no pulumi binary: remove it and run again"
printf 'install-pulumi: installed %s\n' "$dest" >&2
printf '%s\n' "$dest"
