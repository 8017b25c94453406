"""A sealed stack's image and weights, from its own ECR repository and S3 bucket.

The mirror scripts create the stores and fill them from the operator's machine
(``scripts/mirror-image.sh``, ``python -m components.weights.mirror``), before the first
``pulumi up``; they outlive the stack, as the weights volume does. The program looks them
up here with plain invokes, before any resource, and refuses to deploy, saying what to run,
while anything the host needs is missing: a host with no way out could not fetch it.
Then it grants the host read access to exactly those objects, and the bucket policy
refuses the host's role any read that does not come through the stack's S3 gateway
endpoint (stolen role credentials read nothing from elsewhere).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.bootstrap.bundle import BUNDLE_PREFIX, bundle_key
from components.aws.bootstrap.cloud_init import BootstrapSpec, render_bundle
from components.aws.store_names import bucket_name, mirror_tag, registry_host, repository_name
from components.errors import ConfigError
from components.weights.mirror import WEIGHTS_PREFIX, object_key, parse_manifest, s3_manifest

ECR_PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]


@dataclass(frozen=True)
class MirroredStores:
    """Where a sealed host gets what it needs, all of it found mirrored."""

    account: str
    repository: str
    repository_arn: str
    registry: str
    bucket: str
    bucket_arn: str
    cpu_image: str
    """``<registry>/<repository>@sha256:...``: pulled by digest."""
    gpu_image: str
    """As ``cpu_image``; empty when the host has no GPU to use."""
    weights_manifest: str
    """The fetcher's manifest with ``s3://`` URLs and every size known."""


def _missing(stack: str, problems: list[str]) -> ConfigError:
    return ConfigError(
        "localai configuration cannot be deployed yet: with localai:egress none the host "
        "cannot download anything, and the stack's stores lack what it needs:\n"
        + "\n".join(f"  - {p}" for p in problems)
        + "\n  Run, from a machine that can reach the image registry and the models' "
        f"sources:\n    scripts/mirror-image.sh {stack}\n"
        f"    .venv/bin/python -m components.weights.mirror --stack {stack}\n"
        '  then `pulumi up` again (README "Zero egress")'
    )


def _image(repository: str, registry: str, upstream: str, problems: list[str]) -> str:
    tag = mirror_tag(upstream)
    try:
        found = aws.ecr.get_image(repository_name=repository, image_tag=tag)
    except Exception:  # the invoke fails for an image that is not there
        problems.append(f"{upstream} is not in {registry}/{repository} (tag {tag})")
        return ""
    return f"{registry}/{repository}@{found.image_digest}"


def find_mirrored(
    resource_prefix: str,
    *,
    stack: str,
    cpu_image: str,
    gpu_image: str | None,
    manifest: str,
) -> MirroredStores:
    """The stores of ``resource_prefix`` with every image and weights file the host needs
    (plain invokes, at preview). Raises ConfigError listing everything missing or unsafe,
    and the commands that mirror it."""
    account = aws.get_caller_identity().account_id
    region = aws.get_region().region
    repository = repository_name(resource_prefix)
    registry = registry_host(account, region)
    bucket = bucket_name(resource_prefix, account, region)
    problems: list[str] = []
    try:
        repo = aws.ecr.get_repository(name=repository)
    except Exception:
        repo = None
        problems.append(f"the ECR repository {repository} does not exist")
    images = {"cpu": "", "gpu": ""}
    if repo is not None:
        if repo.image_tag_mutability != "IMMUTABLE":
            problems.append(
                f"the ECR repository {repository} has mutable tags: a tag must name one "
                "digest for good (aws ecr put-image-tag-mutability --image-tag-mutability "
                "IMMUTABLE)"
            )
        scanning = repo.image_scanning_configurations
        if not (scanning and scanning[0].scan_on_push):
            problems.append(
                f"the ECR repository {repository} does not scan on push (aws ecr "
                "put-image-scanning-configuration --image-scanning-configuration "
                "scanOnPush=true)"
            )
        images["cpu"] = _image(repository, registry, cpu_image, problems)
        if gpu_image:
            images["gpu"] = _image(repository, registry, gpu_image, problems)
    try:
        bucket_arn = aws.s3.get_bucket(bucket=bucket).arn
    except Exception:
        bucket_arn = ""
        problems.append(f"the weights bucket {bucket} does not exist")
    sizes: dict[str, int] = {}
    if bucket_arn:
        for line in parse_manifest(manifest):
            key = object_key(line)
            try:
                found = aws.s3.get_object(bucket=bucket, key=key)
            except Exception:
                problems.append(f"{line.filename} is not in s3://{bucket}/{key}")
                continue
            if found.metadata.get("sha256") != line.sha256:
                problems.append(f"s3://{bucket}/{key} has no SHA-256 {line.sha256} recorded")
                continue
            sizes[line.filename] = found.content_length
    if problems:
        raise _missing(stack, problems)
    return MirroredStores(
        account=account,
        repository=repository,
        repository_arn=repo.arn,
        registry=registry,
        bucket=bucket,
        bucket_arn=bucket_arn,
        cpu_image=images["cpu"],
        gpu_image=images["gpu"],
        weights_manifest=s3_manifest(manifest, bucket, sizes),
    )


def host_read_policy(stores: MirroredStores, *, bundles: bool = False) -> str:
    """What a sealed host may read: a registry token, pulls from the stack's repository,
    and the weights in the stack's bucket (and a fleet's bootstrap bundles: nothing else
    of either)."""
    prefixes = [WEIGHTS_PREFIX, *([BUNDLE_PREFIX] if bundles else [])]
    objects = [f"{stores.bucket_arn}/{prefix}/*" for prefix in prefixes]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {"Effect": "Allow", "Action": ECR_PULL_ACTIONS, "Resource": stores.repository_arn},
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": objects[0] if len(objects) == 1 else objects,
                },
            ],
        }
    )


def bucket_policy(stores: MirroredStores, endpoint_id: str, role_name: str) -> str:
    """The host's role reads the weights only through the stack's S3 gateway endpoint, and
    nobody uses plain HTTP. The operator's own principal (the mirror: uploads, and HEADs
    that check them) stays governed by its IAM policy."""
    objects = f"{stores.bucket_arn}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "HostReadsOnlyThroughTheStackEndpoint",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": objects,
                    "Condition": {
                        "StringNotEquals": {"aws:SourceVpce": endpoint_id},
                        "ArnLike": {
                            "aws:PrincipalArn": f"arn:*:iam::{stores.account}:role/{role_name}"
                        },
                    },
                },
                tls_only_statement(stores.bucket_arn),
            ],
        }
    )


def tls_only_statement(bucket_arn: str) -> dict[str, object]:
    """A bucket policy statement: nobody reaches the bucket or its objects over plain HTTP."""
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def store_access(
    name: str,
    stores: MirroredStores,
    *,
    role_name: pulumi.Input[str],
    s3_endpoint: aws.ec2.VpcEndpoint,
    parent: pulumi.Resource,
    bundles: bool = False,
) -> list[pulumi.Resource]:
    """The host role's read access and the bucket's policy; the host boots after both."""
    read = aws.iam.RolePolicy(
        f"{name}-stores-read",
        role=role_name,
        policy=host_read_policy(stores, bundles=bundles),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-weights-bucket-policy",
        bucket=stores.bucket,
        policy=pulumi.Output.all(s3_endpoint.id, role_name).apply(
            lambda v: bucket_policy(stores, v[0], v[1])
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return [read, policy]


def bootstrap_bundle(
    name: str,
    bucket: pulumi.Input[str],
    spec: pulumi.Output[BootstrapSpec],
    *,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> aws.s3.BucketObjectv2:
    """A host's files in ``bucket``, fetched by its first boot step (bootstrap/bundle.py): a
    new key for new content, so a launch never reads a bundle that another change replaced."""
    bundle = spec.apply(render_bundle)
    return aws.s3.BucketObjectv2(
        f"{name}-bootstrap-bundle",
        bucket=bucket,
        key=bundle.apply(bundle_key),
        content_base64=bundle.apply(lambda b: base64.b64encode(b).decode("ascii")),
        content_type="application/gzip",
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
