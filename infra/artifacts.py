"""Artifacts: the private, encrypted S3 bucket holding release bundles, and the bundles of this deploy.

It also holds the verified vendor archives of the Grafana host (``infra.releases``) under ``vendor/``.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.bundle import Bundle
from infra.releases import Archive
from infra.tags import Tagger


class Artifacts(pulumi.ComponentResource):
    """A bucket (no public access, SSE, TLS-only policy) and one object per bundle and per vendor archive, each
    keyed by content hash (``vendor``: ``objects["vendor:<component>"]``)."""

    bucket: aws.s3.Bucket
    app_key: str
    observability_key: str

    def __init__(
        self, name: str, app: Bundle, observability: Bundle, tags: Tagger, opts: pulumi.ResourceOptions | None = None,
        vendor: tuple[Archive, ...] = (),
    ) -> None:
        super().__init__("jobfleet:storage:Artifacts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=True, tags=tags("artifacts"), opts=child)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                ),
                bucket_key_enabled=True,
            )],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }],
            })),
            opts=child,
        )
        self.objects: dict[str, aws.s3.BucketObjectv2] = {}
        for label, bundle in (("app", app), ("observability", observability)):
            self.objects[label] = aws.s3.BucketObjectv2(
                f"{name}-{label}-bundle", bucket=bucket.id, key=bundle.key, source=pulumi.FileAsset(str(bundle.path)),
                content_type="application/gzip", server_side_encryption="AES256",
                tags=tags(f"{label}-bundle", {"jobfleet:sha256": bundle.sha256}), opts=child,
            )
        for archive in vendor:
            self.objects[f"vendor:{archive.component}"] = aws.s3.BucketObjectv2(
                f"{name}-vendor-{archive.component}", bucket=bucket.id, key=archive.key,
                source=pulumi.FileAsset(str(archive.path)), content_type="application/gzip",
                server_side_encryption="AES256",
                tags=tags(f"vendor-{archive.component}", {"jobfleet:sha256": archive.sha256,
                                                          "jobfleet:version": archive.version}),
                opts=child,
            )
        self.bucket = bucket
        self.app_key = app.key
        self.observability_key = observability.key
        self.register_outputs({"bucket": bucket.id, "app_key": app.key, "observability_key": observability.key})
