#!/usr/bin/env bash
# Refresh src/ from a LocalAI checkout at the pinned tag: vendor.sh /path/to/LocalAI.git
# The files are copied verbatim (tests excluded, and pkg/utils/untar.go, which needs an
# archive library nothing here uses); SOURCES lists each file's sha256 at the tag.
set -euo pipefail
tag=v2.24.0
repo=${1:?usage: vendor.sh LOCALAI_GIT_DIR}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/src/github.com/mudler/LocalAI"
rm -rf "$here/src"
files=$(git -C "$repo" ls-tree -r --name-only "$tag" pkg/functions pkg/templates pkg/utils |
    grep -v '_test\.go$' | grep -v '^pkg/utils/untar\.go$' | grep '\.go$')
files="$files core/schema/openai.go core/schema/prediction.go LICENSE"
{
    echo "# mudler/LocalAI $tag ($(git -C "$repo" rev-parse "$tag^{commit}")), copied verbatim by vendor.sh"
    for f in $files; do
        mkdir -p "$dest/$(dirname "$f")"
        git -C "$repo" show "$tag:$f" >"$dest/$f"
        echo "$(sha256sum <"$dest/$f" | cut -d' ' -f1)  $f"
    done
} >"$here/SOURCES"
