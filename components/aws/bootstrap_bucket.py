"""An open fleet's bootstrap bucket: where its hosts fetch their files at first boot.

A fleet's files (every instance type's model files, the scripts, the CloudWatch agent's)
exceed EC2's 16 KiB of user data, so they travel as the bundle of bootstrap/bundle.py. A
sealed fleet keeps it in the stack's mirrored weights bucket; an open fleet has none, so
the stack creates this one: private (every public access blocked), objects owned by the
bucket's account, HTTPS only, emptied and deleted by ``pulumi destroy`` (it holds nothing
the stack cannot render again). The hosts' role may read ``bootstrap/*`` and nothing else.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.aws.bootstrap.bundle import BUNDLE_PREFIX
from components.aws.stores import tls_only_statement


def _policy(statement: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def https_only_policy(bucket_arn: str) -> str:
    return _policy(tls_only_statement(bucket_arn))


def read_bundles_policy(bucket_arn: str) -> str:
    return _policy(
        {
            "Sid": "ReadBootstrapBundles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/{BUNDLE_PREFIX}/*",
        }
    )


def bootstrap_bucket(
    name: str,
    *,
    role_name: pulumi.Input[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.s3.Bucket, list[pulumi.Resource]]:
    """The bucket, and what a host must boot after (its policies and the role's read)."""
    opts = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(f"{name}-bootstrap", force_destroy=True, tags=tags, opts=opts)
    blocked = aws.s3.BucketPublicAccessBlock(
        f"{name}-bootstrap-private",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    ownership = aws.s3.BucketOwnershipControls(
        f"{name}-bootstrap-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=opts,
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-bootstrap-https-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(https_only_policy),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[blocked]),
    )
    read = aws.iam.RolePolicy(
        f"{name}-bootstrap-read",
        role=role_name,
        policy=bucket.arn.apply(read_bundles_policy),
        opts=opts,
    )
    return bucket, [blocked, ownership, policy, read]
