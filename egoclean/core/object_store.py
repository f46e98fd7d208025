"""A remote data root (any fsspec URL, e.g. `s3://bucket/prefix`): its filesystem and put/get with bounded retries.

Used by the Dagster IO manager's storage and by the Ray stages (which run on other
machines and publish their outputs to the root themselves), so both talk to the store
the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egoclean.core import atomic, defaults, retry
from egoclean.core.errors import InvalidInputError, ObjectNotFoundError, ObjectStoreError

# Failures that are not the store's, or that it will answer the same way again (a missing
# bucket or key, a 403 for these credentials): another try cannot help.
_PERMANENT = (InvalidInputError, ObjectStoreError, FileNotFoundError, PermissionError, TypeError, AttributeError)


@dataclass
class RemoteRoot:
    """A remote data root and how hard to try each operation on it."""

    root: str
    retries: int = defaults.OBJECT_STORE_ATTEMPTS  # attempts per remote operation (>= 1), with backoff between them
    timeout_sec: float = defaults.OBJECT_STORE_TIMEOUT_SEC  # per remote request (connect and each read)

    def fs(self):
        """The fsspec filesystem of the root.

        For S3 (s3fs) the listing cache is off, since other machines write the same
        prefixes, and botocore's own retries and timeouts are bounded; `call` retries
        whole operations on top."""
        import fsspec

        kwargs: dict[str, Any] = {}
        if self.root.split("://", 1)[0] in ("s3", "s3a"):
            # the endpoint (AWS_ENDPOINT_URL, read by botocore too) is passed on so fsspec's
            # instance cache tells filesystems on different servers apart
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            kwargs = {"endpoint_url": endpoint or None, "use_listings_cache": False,
                      "config_kwargs": {"connect_timeout": self.timeout_sec, "read_timeout": self.timeout_sec,
                                        "retries": {"total_max_attempts": 1, "mode": "standard"}}}
        fs, _ = fsspec.core.url_to_fs(self.root, **kwargs)
        if kwargs:
            fs.retries = 1  # s3fs's own retry loop (a class attribute, 5): `call` counts attempts
        return fs

    def call(self, what: str, op):
        """Run one remote operation with bounded retries; ObjectStoreError when they run out.

        S3 makes an object visible only once its upload completed (a multipart upload
        too), so a failed attempt leaves nothing under the final name to be seen."""
        policy = retry.Backoff(attempts=max(1, int(self.retries)), base_sec=defaults.OBJECT_STORE_BACKOFF_SEC,
                               cap_sec=defaults.OBJECT_STORE_BACKOFF_CAP_SEC)
        try:
            # s3fs/botocore/aiohttp errors have no common base: all but the permanent ones are retried
            return retry.call(op, policy, retry_if=lambda e: not isinstance(e, _PERMANENT))
        except retry.GaveUp as g:
            e = g.error
            raise ObjectStoreError(
                f"object store {self.root}: {what} failed after {g.attempts} attempt(s): "
                f"{type(e).__name__}: {_short(e)}"
            ) from None
        except ObjectStoreError:
            raise
        except FileNotFoundError as e:
            # s3fs says NoSuchBucket and NoSuchKey this way, often without the name
            missing = _not_found_what(e)
            raise ObjectNotFoundError(f"object store {self.root}: {what}: {missing} does not exist") from None
        except PermissionError as e:
            raise ObjectStoreError(
                f"object store {self.root}: {what}: access denied ({_short(e)}); check the credentials "
                "(AWS_ACCESS_KEY_ID / AWS_PROFILE) and the bucket's policy"
            ) from None

    def put(self, local: str | os.PathLike, url: str, fs=None) -> None:
        """Upload one local file to `url` (visible only once complete)."""
        fs = fs or self.fs()
        self.call(f"uploading {url}", lambda: fs.put_file(str(local), url))

    def get(self, url: str, local: str | os.PathLike, fs=None) -> Path:
        """Download `url` to `local` through a temporary name (a cut-off download never passes for the file)."""
        fs = fs or self.fs()

        def get():
            with atomic.atomic_path(local) as tmp:
                fs.get_file(url, str(tmp))

        self.call(f"downloading {url}", get)
        return Path(local)


def _short(e: BaseException) -> str:
    """An exception's message on one line, at most 300 characters."""
    return (" ".join(str(e).split()) or type(e).__name__)[:300]


def _not_found_what(e: FileNotFoundError) -> str:
    """"the bucket" or "the object" from s3fs's FileNotFoundError (its text names neither reliably)."""
    text = str(e)
    return "the bucket" if "NoSuchBucket" in text or "bucket does not exist" in text.lower() else "the object"
