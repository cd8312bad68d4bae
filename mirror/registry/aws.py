"""What the S3 store and the ECR helpers share: AWS error translation.

botocore retries every request itself (standard mode), so the one retry layer for an AWS API
call is botocore's. An error that comes out of a call has already been retried there and is
marked not temporary, so an outer loop does not multiply the attempts. Errors while a response
body streams (after the call returned) were not retried by botocore and stay temporary.
botocore and aiohttp exceptions never leave this package untranslated.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from botocore import exceptions as bce

from mirror.types.errors import AuthError, MirrorError, NotFound, RegistryError, TransportError

AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AuthorizationHeaderMalformed",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound", "404"})
CREDENTIAL_ERRORS: tuple[type[Exception], ...] = (
    bce.NoCredentialsError,
    bce.PartialCredentialsError,
    bce.CredentialRetrievalError,
    bce.TokenRetrievalError,
    bce.SSOError,
    bce.UnknownCredentialError,
    bce.NoAuthTokenError,
)
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    bce.ResponseStreamingError,
    bce.ReadTimeoutError,
    bce.IncompleteReadError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


class PreconditionFailed(MirrorError):
    """A conditional write (If-Match / If-None-Match) that did not hold: HTTP 412."""

    kind = "precondition"


def error_code(exc: bce.ClientError) -> tuple[str, int, str]:
    """``(code, http_status, message)`` of a botocore ClientError."""
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode") or 0
    code = str(error.get("Code") or "")
    return code, int(status) if str(status).isdigit() else 0, str(error.get("Message") or code)


def translate(exc: BaseException, what: str, *, streaming: bool = False) -> MirrorError:
    """A typed error for a failed AWS call (or, with ``streaming``, a failed body read)."""
    if isinstance(exc, MirrorError):
        return exc
    if isinstance(exc, bce.ClientError):
        code, status, message = error_code(exc)
        if status == 412 or code == "PreconditionFailed":
            return PreconditionFailed(f"{what}: a condition of the request did not hold ({message})")
        if code == "NoSuchBucket":
            return NotFound(
                f"{what}: the bucket does not exist ({message})", status=404, code=code, temporary=False
            )
        if code in NOT_FOUND_CODES or status == 404:
            return NotFound(f"{what}: not found", status=404, code=code, temporary=False)
        if code in AUTH_CODES or status in (401, 403):
            return AuthError(
                f"{what}: AWS refused the request ({code or status}: {message}); check the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance/pod role) "
                "and their permissions"
            )
        return RegistryError(
            f"{what}: AWS answered {status} {code}: {message}", status=status, code=code, temporary=False
        )
    if isinstance(exc, CREDENTIAL_ERRORS):
        return AuthError(
            f"{what}: no usable AWS credentials ({exc}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance/pod role"
        )
    if isinstance(exc, bce.NoRegionError):
        return MirrorError(f"{what}: no AWS region configured; set AWS_REGION or AWS_DEFAULT_REGION")
    if isinstance(exc, (*STREAM_ERRORS, bce.HTTPClientError, bce.ConnectionError, OSError)):
        error = TransportError(f"{what}: connection failed: {exc}")
        error.temporary = streaming
        return error
    if isinstance(exc, bce.BotoCoreError):
        return MirrorError(f"{what}: {exc}")
    return MirrorError(f"{what}: {type(exc).__name__}: {exc}")


TRANSLATED: tuple[type[BaseException], ...] = (
    bce.BotoCoreError,
    bce.ClientError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)
"""Exceptions :func:`translate` turns into MirrorError; anything else propagates unchanged."""
