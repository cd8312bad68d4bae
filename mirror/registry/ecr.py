"""Amazon ECR as a destination: repositories created on demand, and what ECR does with mounts.

ECR does not create a repository on push: pushing to a missing one fails with
``NAME_UNKNOWN``. :func:`ensure_repository` calls ``CreateRepository`` (idempotent: an existing
repository is fine) for a job that allows it, before anything is pushed there.

Mounts: unless registry blob mounting is turned on for the account (an ECR account setting,
``BLOB_MOUNTING``), ECR answers ``202 Accepted`` with an upload session to every
``POST ...?mount=&from=``. That costs nothing extra here: the registry client keeps the session a
202 opened and the blob's upload uses it (no second POST), and the copy engine stops trying
mounts at a registry that answered 202 to a mount of a blob it had just pushed there. Where
blob mounting is on, mounts work as on any other registry.

Tags leave through ``BatchDeleteImage`` (:func:`delete_tag`), which removes the tag only.

A prefix source lists its repositories through ``DescribeRepositories``
(:func:`list_repositories`, paged with ``maxResults``/``nextToken``), not ``_catalog``: ECR's answer
to ``_catalog`` is not documented; what is reported of its answer is that ``n`` above 1000 is refused
(google/go-containerregistry#1091) and that it does not page (Quiq/registry-ui#48), so a
registry with more repositories would be listed short.

These calls accept ECR under another host name (``any_name``: a proxy, a custom domain or an
emulator the config marks ``kind: ecr``): the region then comes from the AWS configuration and
the account is the caller's.

Blob downloads from ECR answer with a redirect to S3 (a presigned URL); the transport follows it
without sending the registry's ``Authorization`` to S3.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from botocore.exceptions import ClientError

from mirror.registry.aws import TRANSLATED, error_code, translate
from mirror.types.errors import InputError, InvalidReference, RegistryError
from mirror.types.hosts import EcrHost, parse_ecr_host
from mirror.types.reference import validate_repository

__all__ = ["EcrHost", "delete_tag", "ensure_repository", "list_repositories", "parse_ecr_host"]

LIST_PAGE = 1000  # DescribeRepositories maxResults: 1 to 1000 (ECR API reference)
LIST_PERMISSION = "ecr:DescribeRepositories"


def registry_of(host: str, *, any_name: bool, needs: str) -> EcrHost:
    """The ECR registry ``host`` names. ``any_name``: a host whose name does not say it (the
    config's ``kind: ecr``) is the caller's account in the region of the AWS configuration
    (``AWS_REGION``, ``AWS_DEFAULT_REGION``). ``needs`` says what for, in the error."""
    ecr = parse_ecr_host(host)
    if ecr is not None:
        return ecr
    if not any_name:
        raise InputError(f"{host} is not an Amazon ECR registry (ACCOUNT.dkr.ecr.REGION.amazonaws.com)")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise InputError(f"{host}: the host name does not say the ECR region; set AWS_REGION to {needs}")
    return EcrHost(account="", region=region, fips=False, domain="")


@asynccontextmanager
async def ecr_client(
    ecr: EcrHost, *, endpoint_url: str | None = None, session: Any = None, profile: str | None = None
) -> AsyncIterator[Any]:
    """An aiobotocore ECR client for ``ecr``'s region: credentials from the standard AWS chain (or
    ``profile``), botocore's standard retries (the one retry layer for these calls), bounded
    connect and read timeouts. ``endpoint_url`` overrides the API endpoint (botocore also reads
    ``AWS_ENDPOINT_URL_ECR``)."""
    from aiobotocore.config import AioConfig  # imported here: a third of a second, only for ECR
    from aiobotocore.session import AioSession

    if session is None:
        session = AioSession(profile=profile)
    config = AioConfig(
        retries={"max_attempts": 5, "mode": "standard"},
        use_fips_endpoint=ecr.fips,
        connect_timeout=10,
        read_timeout=30,
    )
    async with session.create_client(
        "ecr", region_name=ecr.region, endpoint_url=endpoint_url, config=config
    ) as client:
        yield client


def _in(ecr: EcrHost) -> str:
    return f"in {ecr.account or 'the caller account'} {ecr.region}"


async def ensure_repository(
    host: str,
    repository: str,
    *,
    endpoint_url: str | None = None,
    session: Any = None,
    profile: str | None = None,
    image_tag_mutability: str | None = None,
    any_name: bool = False,
) -> bool:
    """Create ``repository`` in the ECR registry ``host`` unless it exists; True when created.

    The region and account come from the host (see :func:`registry_of` for ``any_name``);
    client settings as for :func:`ecr_client`. ``image_tag_mutability`` (``MUTABLE`` or
    ``IMMUTABLE``) applies only to a repository created here. Raises AuthError when the
    principal may not create it.
    """
    ecr = registry_of(host, any_name=any_name, needs="create repositories there")
    try:
        validate_repository(repository)
    except InvalidReference as exc:
        raise InvalidReference(f"ECR repository {repository!r} on {host}: {exc.message}") from None
    what = f"ecr CreateRepository {repository} {_in(ecr)}"
    request: dict[str, Any] = {"repositoryName": repository}
    if ecr.account:
        request["registryId"] = ecr.account
    if image_tag_mutability:
        request["imageTagMutability"] = image_tag_mutability
    try:
        async with ecr_client(ecr, endpoint_url=endpoint_url, session=session, profile=profile) as client:
            try:
                await client.create_repository(**request)
            except ClientError as exc:
                if error_code(exc)[0] == "RepositoryAlreadyExistsException":
                    return False
                raise
    except TRANSLATED as exc:
        raise translate(exc, what) from None
    return True


async def delete_tag(
    host: str,
    repository: str,
    tag: str,
    *,
    endpoint_url: str | None = None,
    session: Any = None,
    profile: str | None = None,
    any_name: bool = False,
) -> None:
    """Remove ``tag`` from ``repository`` through ECR's ``BatchDeleteImage``.

    Given an ``imageTag``, ECR removes that tag only; the image itself goes when it was its last
    tag. A tag that is already gone (``ImageNotFound``) is not an error. Host, credentials and
    client settings as for :func:`ensure_repository`."""
    ecr = registry_of(host, any_name=any_name, needs="delete tags there")
    what = f"ecr BatchDeleteImage {repository}:{tag} {_in(ecr)}"
    request: dict[str, Any] = {"repositoryName": repository, "imageIds": [{"imageTag": tag}]}
    if ecr.account:
        request["registryId"] = ecr.account
    try:
        async with ecr_client(ecr, endpoint_url=endpoint_url, session=session, profile=profile) as client:
            answer = await client.batch_delete_image(**request)
    except TRANSLATED as exc:
        raise translate(exc, what) from None
    for failure in answer.get("failures") or []:
        code = str(failure.get("failureCode") or "")
        if code != "ImageNotFound":
            raise RegistryError(f"{what}: {code}: {failure.get('failureReason') or 'refused'}")


async def list_repositories(
    host: str,
    *,
    endpoint_url: str | None = None,
    session: Any = None,
    profile: str | None = None,
    any_name: bool = False,
) -> list[str]:
    """Every repository of the ECR registry ``host``, through ``DescribeRepositories`` read page by
    page (``maxResults``, then the ``nextToken`` of each page until a page gives none; a token
    given twice is an error, so the walk always ends).

    Host, credentials and client settings as for :func:`ensure_repository`. Any failure (a
    refusal, no credentials, throttling past botocore's retries) raises a MirrorError whose
    message names the permission the listing needs: a listing never comes back short."""
    ecr = registry_of(host, any_name=any_name, needs="list repositories there")
    what = (
        f"ecr DescribeRepositories {_in(ecr)} (listing repositories needs the {LIST_PERMISSION} permission)"
    )
    request: dict[str, Any] = {"maxResults": LIST_PAGE}
    if ecr.account:
        request["registryId"] = ecr.account
    names: list[str] = []
    tokens: set[str] = set()
    try:
        async with ecr_client(ecr, endpoint_url=endpoint_url, session=session, profile=profile) as client:
            while True:
                page = await client.describe_repositories(**request)
                names.extend(_repository_names(page, what))
                token = page.get("nextToken")
                if not token:
                    return names
                if not isinstance(token, str) or token in tokens:
                    raise RegistryError(f"{what}: a nextToken came back twice (the listing would not end)")
                tokens.add(token)
                request["nextToken"] = token
    except TRANSLATED as exc:
        raise translate(exc, what) from None


def _repository_names(page: dict[str, Any], what: str) -> list[str]:
    repositories = page.get("repositories") or []
    names = [r.get("repositoryName") if isinstance(r, dict) else None for r in repositories]
    if not all(isinstance(name, str) and name for name in names):
        raise RegistryError(f"{what}: a listed repository has no repositoryName")
    return [str(name) for name in names]
