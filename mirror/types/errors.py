"""The one exception tree of mirror.

MirrorError                       base; ``temporary`` says whether a retry may succeed
├── InputError                    bad user input (exit code 2)
│   ├── InvalidReference          an image reference that does not parse
│   └── ConfigError               a config file or flag that does not validate (carries the path)
├── ManifestError                 a manifest or index that is malformed or too large
├── VerificationError             bytes that do not match what was promised
│   ├── DigestMismatch
│   │   └── SourceCorrupt         the same wrong digest read twice: the source's own bytes are bad
│   └── SizeMismatch
├── TagConflict                   a destination tag names another digest and overwrite is off
├── Deferred                      not read in this pass: the source's rate limit is spent
├── BlobTooLarge                  a blob over a destination's known maximum size
├── AuthError                     credentials missing, refused, or unusable
│   └── TokenLifetimeError        a transfer would outlive every token that can be had
├── RegistryError                 an HTTP answer from a registry (status, OCI code, message)
│   └── NotFound
├── TransportError                connection-level failure (reset, timeout, DNS): temporary
│   └── StallError                a transfer that made no progress for ``stall_timeout``
├── UnsafeRequest                 a redirect/realm/Location that would leak to another host or scheme
├── ShutdownError                 not done: mirror was stopping (a signal) before or while doing it
└── IncompleteManifest            refused by a layout store that lacks a blob or child it names

Third-party exceptions (aiohttp, botocore) are translated into these at the boundary.
"""

from __future__ import annotations

# OCI error codes that mean "try again later" (distribution spec + registries seen in the wild).
TEMPORARY_OCI_CODES = frozenset({"BLOB_UPLOAD_INVALID", "TOOMANYREQUESTS", "UNKNOWN", "UNAVAILABLE"})
TEMPORARY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class MirrorError(Exception):
    """Base of every error mirror raises on purpose."""

    temporary: bool = False
    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(MirrorError):
    kind = "input"


class InvalidReference(InputError):
    kind = "reference"


class ConfigError(InputError):
    kind = "config"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ManifestError(MirrorError):
    kind = "manifest"


class VerificationError(MirrorError):
    kind = "verification"


class DigestMismatch(VerificationError):
    kind = "digest_mismatch"

    def __init__(self, expected: str, actual: str, what: str = "blob") -> None:
        super().__init__(f"{what} digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SourceCorrupt(DigestMismatch):
    """A blob whose bytes hash to the same wrong digest on two reads: not a fault on the way
    (which would differ from read to read) but the source's own corruption."""

    kind = "source_corrupt"

    def __init__(self, expected: str, source: str, actual: str) -> None:
        super().__init__(expected, actual)
        self.source = source
        self.message = (
            f"{source} serves corrupt bytes for blob {expected}: two reads hashed to the same "
            f"wrong digest {actual}; the source must be repaired (push the blob again)"
        )
        self.args = (self.message,)


class SizeMismatch(VerificationError):
    kind = "size_mismatch"

    def __init__(self, expected: int, actual: int, what: str = "blob") -> None:
        super().__init__(f"{what} size mismatch: expected {expected} bytes, got {actual}")
        self.expected = expected
        self.actual = actual


class TagConflict(MirrorError):
    kind = "tag_conflict"

    def __init__(self, target: str, existing: str, wanted: str) -> None:
        super().__init__(
            f"{target} already names {existing}, not {wanted}; tags are immutable by default: "
            "leave it, or allow moving it with --overwrite (overwrite: true in a job)"
        )
        self.target = target
        self.existing = existing
        self.wanted = wanted


class Deferred(MirrorError):
    """An image left for a later pass: its source registry's pull limit is spent (Docker Hub).
    Not a failure: ``until`` (epoch seconds, when known) is when pulls are allowed again."""

    kind = "deferred"

    def __init__(self, message: str, *, host: str = "", until: float | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.until = until


class BlobTooLarge(MirrorError):
    kind = "blob_too_large"


class AuthError(MirrorError):
    kind = "auth"


class TokenLifetimeError(AuthError):
    kind = "token_lifetime"


class RegistryError(MirrorError):
    """An error answer from a registry."""

    kind = "registry"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        temporary: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        if temporary is None:
            temporary = status in TEMPORARY_STATUSES or code in TEMPORARY_OCI_CODES
        self.temporary = temporary


class NotFound(RegistryError):
    kind = "not_found"


class TransportError(MirrorError):
    kind = "transport"
    temporary = True


class StallError(TransportError):
    """A source or destination that made no progress for ``stall_timeout``; temporary (a fresh
    read, a new connection, may go)."""

    kind = "stalled"


class UnsafeRequest(MirrorError):
    kind = "unsafe"


class ShutdownError(MirrorError):
    kind = "shutdown"


class IncompleteManifest(MirrorError):
    kind = "incomplete"
