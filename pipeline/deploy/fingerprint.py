"""A fingerprint of the data under the channels' S3 prefixes, for the step-caching key.

Listing is enough: S3 gives every object's key, ETag and size, and any upload changes
at least one of them. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from pipeline import aws


def fingerprint(s3: Any, uris: Iterable[str]) -> str:
    """A short hash of every object (key, ETag, size) under each prefix; the same data, the same value."""
    digest = hashlib.sha256()
    for uri in sorted(set(uris)):
        bucket, prefix = aws.split_s3_uri(uri)
        digest.update(f"{uri}\n".encode())
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                digest.update(f"{item['Key']}\t{item['ETag']}\t{item['Size']}\n".encode())
    return digest.hexdigest()[:16]
