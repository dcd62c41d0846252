"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph's gateway), on boto3.

Objects are named ``ab/cd/<sha256>`` in one bucket. Credentials and region come from
boto3's default chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_DEFAULT_REGION``, a profile, an instance or task role); nothing here reads them.
Every failure to reach the store, or its refusal, is raised as ``StorageUnavailable``.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import io
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import CHUNK, StorageUnavailable, content_disposition, fan_out

MiB = 1024 * 1024
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def s3_client(
    endpoint_url: str | None = None,
    *,
    connect_timeout: float = 3,
    read_timeout: float = 30,
    max_attempts: int = 3,
    max_pool_connections: int = 10,
    session: boto3.session.Session | None = None,
) -> Any:
    """A boto3 S3 client that gives up within seconds when the store is unreachable:
    short connect timeout, three attempts in all (botocore's "standard" retries, with
    backoff, for throttling and transient errors). ``endpoint_url`` None is AWS itself;
    another endpoint (MinIO, Ceph, moto) is addressed path-style, which they all take.
    A new ``session`` (default) resolves the credentials afresh; passing one makes
    clients cheap to create (tests) and shares its credentials."""
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    session = session or boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=config)


class S3BlobStore:
    """Blobs as objects ``ab/cd/<sha256>`` in ``bucket``.

    How ``put`` leaves nothing half-stored: the key is the hash of the content, so it
    is known only once the whole stream has been read, and an object cannot be renamed.
    So the content is hashed first and uploaded under its key afterwards:

    * a seekable stream up to ``multipart_threshold`` bytes (64 MiB; an upload's
      stream, a file, ``BytesIO``) is read twice: hashed in chunks, rewound, and sent
      from where it is in ONE ``PutObject`` carrying the SHA-256 as ``ChecksumSHA256``.
      S3 checks the body against it (a stream that changed in between is refused) and
      stores the object whole or not at all. No copy is made, so a small put costs
      what a bare ``put_object`` costs plus one hash;
    * any other stream (not seekable, or larger) is first spooled to a local temporary
      file while it is hashed (constant memory; the file is gone when ``put`` returns
      or fails), and that file is uploaded: in one ``PutObject`` as above, or above the
      threshold as a multipart upload (s3transfer, from the file, a few parts at a
      time), whose object appears only when the upload completes; s3transfer aborts
      it on failure, and the parts of an upload whose process died are never an
      object (a bucket lifecycle rule, ``AbortIncompleteMultipartUpload``, removes
      them). A large blob that is already stored is not uploaded again.

    A second put of the same small content rewrites an identical object: harmless,
    and cheaper than asking first. The alternative, streaming to a temporary object
    and copying it to its key, leaves temporary objects behind on every crash and
    doubles the writes in the store.
    """

    list_page_size = 1000  # names per ListObjectsV2 page: S3's maximum

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        presign_seconds: int = 60,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        spool_dir: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.presign_seconds = presign_seconds
        self.spool_dir = spool_dir
        self.multipart_threshold = multipart_threshold
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=4,
        )

    # --- errors -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint URL without any user info, for messages."""
        parts = urlsplit(self.client.meta.endpoint_url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))

    def _unavailable(self, operation: str, exc: Exception) -> StorageUnavailable:
        """A message naming the operation, the bucket, the endpoint and the error code
        (or exception class), never credentials."""
        where = f"S3 {operation} in bucket {self.bucket!r} at {self.endpoint}"
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code") or _status(exc)
            return StorageUnavailable(f"{where} was refused: {code}")
        return StorageUnavailable(f"{where} failed: {type(exc).__name__}")

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """Turn what boto3 raises into ``StorageUnavailable``, or ``FileNotFoundError``
        for an unknown key (when ``key`` is given)."""
        try:
            yield
        except ClientError as exc:
            if key is not None and (_code(exc) in NOT_FOUND or _status(exc) == 404):
                raise FileNotFoundError(f"no blob {key}") from None
            raise self._unavailable(operation, exc) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise self._unavailable(operation, exc) from exc

    def check(self) -> None:
        """One ``HeadBucket``: the bucket exists and these credentials may use it;
        otherwise ``StorageUnavailable`` saying which."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) == 404:
                message = f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}"
                raise StorageUnavailable(message) from exc
            if _status(exc) == 403:
                message = f"S3 bucket {self.bucket!r} at {self.endpoint} refuses these credentials"
                raise StorageUnavailable(message) from exc
            raise self._unavailable("HeadBucket", exc) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise self._unavailable("HeadBucket", exc) from exc

    # --- the contract -------------------------------------------------------------------

    def put(self, fileobj: BinaryIO) -> str:
        if _seekable(fileobj):
            start = fileobj.tell()
            digest, size = _hashed(fileobj)
            fileobj.seek(start)
            if size <= self.multipart_threshold:
                return self._put_object(fileobj, digest, size)
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="blob-spool-") as spool:
            digest, size = _hashed(fileobj, copy_to=spool)
            spool.flush()
            spool.seek(0)
            if size <= self.multipart_threshold:
                return self._put_object(spool.file, digest, size)
            key = digest.hexdigest()
            if not self.exists(key):
                with self._errors("multipart upload"):
                    self.client.upload_file(
                        spool.name,
                        self.bucket,
                        fan_out(key),
                        ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                        Config=self.transfer_config,
                    )
            return key

    def _put_object(self, body: BinaryIO, digest, size: int) -> str:
        key = digest.hexdigest()
        with self._errors("PutObject"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=fan_out(key),
                Body=body,
                ContentLength=size,
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
            )
        return key

    def deferred_sync(self):
        """Nothing to defer: an object store has the object durably once PUT answers."""
        return contextlib.nullcontext()

    def put_bytes(self, data: bytes) -> str:
        return self.put(io.BytesIO(data))

    def open(self, key: str) -> BinaryIO:
        name = fan_out(key)
        with self._errors("GetObject", key):
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        return _Body(response["Body"], self)  # type: ignore[return-value]

    def _head(self, key: str) -> dict:
        name = fan_out(key)
        with self._errors("HeadObject", key):
            return self.client.head_object(Bucket=self.bucket, Key=name)

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def missing(self, keys: Iterable[str]) -> set[str]:
        """One ``ListObjectsV2`` page (up to 1,000 names, in key order) answers every
        wanted key in its span; the next request starts right before the next wanted
        key not yet answered. So a request never answers fewer than one key, and a
        dense set (an administration's documents) costs about one request per 1,000
        stored objects it spans, never one per key."""
        wanted = sorted({fan_out(key) for key in keys})  # names sort as their keys
        found: set[str] = set()
        i = 0
        start_after = wanted[0][:-1] if wanted else ""
        while i < len(wanted):
            with self._errors("ListObjectsV2"):
                page = self.client.list_objects_v2(
                    Bucket=self.bucket, StartAfter=start_after, MaxKeys=self.list_page_size
                )
            listed = [item["Key"] for item in page.get("Contents", ())]
            found.update(listed)
            if not page.get("IsTruncated") or not listed:
                break
            last = listed[-1]
            i = bisect.bisect_right(wanted, last, i)
            if i < len(wanted):
                # Continue the listing if the next key is near, else jump to it.
                start_after = max(last, wanted[i][:-1])
        return {name.rsplit("/", 1)[1] for name in wanted if name not in found}

    def download_url(
        self, key: str, *, filename: str, content_type: str, as_attachment: bool = True
    ) -> str | None:
        """A presigned ``GetObject`` URL, valid ``presign_seconds``, that serves the
        object with ``content_type`` and a ``Content-Disposition`` naming ``filename``.
        Signing is local (no request); an unknown key gives a URL that answers 404."""
        name = fan_out(key)
        with self._errors("presign GetObject"):
            return self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": name,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition(
                        filename, as_attachment=as_attachment
                    ),
                },
                ExpiresIn=self.presign_seconds,
            )


def _seekable(fileobj: BinaryIO) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _hashed(fileobj: BinaryIO, copy_to: BinaryIO | None = None):
    """The SHA-256 and the length of the rest of ``fileobj``, read in chunks (and
    written to ``copy_to`` on the way)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := fileobj.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest, size


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


class _Body(io.RawIOBase):
    """A ``GetObject`` body (botocore's ``StreamingBody``) as a binary stream whose
    read errors (a connection lost mid-file, a timeout) are ``StorageUnavailable``."""

    def __init__(self, body: Any, store: S3BlobStore) -> None:
        self._body = body
        self._store = store

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._store._errors("GetObject read"):
            return self._body.read(None if size is None or size < 0 else size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
