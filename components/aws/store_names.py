"""Names of a sealed stack's own stores: its ECR repository and its S3 weights bucket.

Pure (no Pulumi import): the program looks the stores up by these names, and the mirror
scripts, which run before the first ``pulumi up`` on the operator's machine, create them
under the same names (``python -m components.aws.store_names --stack S --account A
--region R`` prints them for ``scripts/mirror-image.sh``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys

BUCKET_MAX_CHARS = 63  # S3 User Guide, "General purpose bucket naming rules"
ECR_TAG_MAX_CHARS = 128  # ECR API Reference, ImageIdentifier.imageTag
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_NOT_TAG = re.compile(r"[^A-Za-z0-9_.-]+")
_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


def _slug(resource_prefix: str) -> str:
    slug = _NOT_SLUG.sub("-", resource_prefix.lower()).strip("-")
    if not slug:
        raise ValueError(f"{resource_prefix!r} has no letter or digit to name a store after")
    return slug


def repository_name(resource_prefix: str) -> str:
    """``localai/<project>-<stack>``, lower case, runs of other characters as one ``-``
    (ECR repository names: lower-case letters, digits and single separators)."""
    return f"localai/{_slug(resource_prefix)}"


def bucket_name(resource_prefix: str, account_id: str, region: str) -> str:
    """``<project>-<stack>-<account>-<region>`` (bucket names are global: the account and
    region make it the operator's own), at most 63 characters: a longer slug is cut and
    ends in 8 hex digits of its SHA-256 so two long stack names stay apart."""
    if not _ACCOUNT.fullmatch(account_id):
        raise ValueError(f"{account_id!r} is not a 12-digit AWS account id")
    if not _REGION.fullmatch(region):
        raise ValueError(f"{region!r} is not an AWS region name")
    slug = _slug(resource_prefix)
    suffix = f"-{account_id}-{region}"
    room = BUCKET_MAX_CHARS - len(suffix)
    if len(slug) > room:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        slug = f"{slug[: room - 9].rstrip('-')}-{digest}"
    return slug + suffix


def registry_host(account_id: str, region: str) -> str:
    """The account's private registry in ``region`` (the ecr.dkr endpoint's name)."""
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


def mirror_tag(image: str) -> str:
    """The tag an upstream image gets in the stack's repository: its whole reference, so
    the CPU and GPU images (and a custom image with the same tag) never collide, e.g.
    ``localai/localai:v2.24.0-ffmpeg-core`` -> ``localai-localai-v2.24.0-ffmpeg-core``.
    Tags are immutable there, so a tag names one digest for good."""
    tag = _NOT_TAG.sub("-", image).strip("-.")
    if len(tag) > ECR_TAG_MAX_CHARS:
        digest = hashlib.sha256(image.encode()).hexdigest()[:16]
        tag = f"{tag[: ECR_TAG_MAX_CHARS - 17]}-{digest}"
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, help="<project>-<stack>")
    parser.add_argument("--account", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--image", action="append", default=[], help="an upstream image")
    args = parser.parse_args(argv)
    try:
        print(f"repository={repository_name(args.prefix)}")
        print(f"bucket={bucket_name(args.prefix, args.account, args.region)}")
        print(f"registry={registry_host(args.account, args.region)}")
        for image in args.image:
            print(f"tag={image} {mirror_tag(image)}")
    except ValueError as exc:
        print(f"store_names: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
