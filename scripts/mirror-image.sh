#!/usr/bin/env bash
# Copy a stack's pinned LocalAI image(s) into the stack's own ECR repository, for hosts
# with localai:egress none (README "Zero egress"). Run it from a machine with Docker, the
# aws CLI, this repository's .venv and a route to the upstream registry:
#
#   scripts/mirror-image.sh STACK
#
# Creates the repository when missing (tags immutable, scan on push, AES-256 at rest),
# pulls each image the stack's host uses (the CPU image; the CUDA image too for a GPU
# type), pushes it under its mirror tag and checks that the repository holds the digest
# that was pushed. An image already mirrored is left alone: its tag is immutable, so a
# second run pushes nothing. The region is the aws CLI's (AWS_REGION or its profile).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
die() {
    printf 'mirror-image: error: %s\n' "$*" >&2
    exit 1
}
[[ $# -eq 1 ]] || die "usage: scripts/mirror-image.sh STACK"
stack=$1
[[ "$stack" =~ ^[A-Za-z0-9._-]+$ ]] || die "'$stack' is not a stack name"
command -v docker >/dev/null || die "docker is needed to pull and push the image"
command -v aws >/dev/null || die "the aws CLI is needed to reach ECR"

region=${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}
[[ -n "$region" ]] || die "no AWS region: set AWS_REGION (the stack's region)"
account=$(aws sts get-caller-identity --query Account --output text) ||
    die "cannot tell which AWS account this is (aws sts get-caller-identity)"

listed=$(cd "$root" && "$python" -c '
import sys
from components.errors import ConfigError
from components.weights.mirror import MirrorError, stack_images
try:
    print("\n".join(stack_images(sys.argv[1])))
except (MirrorError, ConfigError) as exc:
    sys.exit(f"mirror-image: error: {exc}")
' "$stack") || die "cannot read stacks/Pulumi.$stack.yaml"
mapfile -t images <<<"$listed"
args=(--prefix "localai-$stack" --account "$account" --region "$region")
for image in "${images[@]}"; do args+=(--image "$image"); done
names=$(cd "$root" && "$python" -m components.aws.store_names "${args[@]}") ||
    die "cannot name the stack's stores"
repository=$(sed -n 's/^repository=//p' <<<"$names")
registry=$(sed -n 's/^registry=//p' <<<"$names")

if ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
    aws ecr create-repository --region "$region" --repository-name "$repository" \
        --image-tag-mutability IMMUTABLE \
        --image-scanning-configuration scanOnPush=true \
        --encryption-configuration encryptionType=AES256 >/dev/null ||
        die "cannot create the ECR repository $repository"
    echo "created $registry/$repository (immutable tags, scan on push)"
fi
mutability=$(aws ecr describe-repositories --region "$region" --repository-names "$repository" \
    --query 'repositories[0].imageTagMutability' --output text)
[[ "$mutability" == IMMUTABLE ]] ||
    die "$repository has $mutability tags; the stack needs IMMUTABLE (aws ecr put-image-tag-mutability)"

aws ecr get-login-password --region "$region" |
    docker login --username AWS --password-stdin "$registry" >/dev/null ||
    die "cannot log in to $registry"

while read -r _ image tag; do
    [[ -n "$tag" ]] || continue
    there=$(aws ecr describe-images --region "$region" --repository-name "$repository" \
        --image-ids "imageTag=$tag" --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true)
    if [[ "$there" == sha256:* ]]; then
        echo "$image: already there ($registry/$repository@$there)"
        continue
    fi
    docker pull --quiet "$image" >/dev/null || die "cannot pull $image"
    docker tag "$image" "$registry/$repository:$tag"
    pushed=$(docker push "$registry/$repository:$tag" | sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p' | tail -n 1)
    [[ -n "$pushed" ]] || die "docker push reported no digest for $image"
    there=$(aws ecr describe-images --region "$region" --repository-name "$repository" \
        --image-ids "imageTag=$tag" --query 'imageDetails[0].imageDigest' --output text) ||
        die "$registry/$repository:$tag is not there after the push"
    [[ "$there" == "$pushed" ]] ||
        die "$registry/$repository:$tag holds $there, but $pushed was pushed"
    echo "$image: pushed ($registry/$repository@$pushed)"
done < <(grep '^tag=' <<<"$names" | sed 's/^tag=/tag /')
