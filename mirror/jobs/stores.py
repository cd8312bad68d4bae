"""Opening a repository of any store from a parsed reference."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from mirror.registry.base import Repository
from mirror.registry.distribution import RegistryRepository
from mirror.registry.ocilayout import OciLayout
from mirror.registry.profiles import RegistryProfile, profile_for
from mirror.registry.pulls import PullBudgets
from mirror.transport.client import Transport
from mirror.types.errors import InputError
from mirror.types.reference import ImageRef, LayoutRef, Ref

log = logging.getLogger("mirror")


def store_requests(repos: Iterable[Repository]) -> int:
    """Requests that stores sent on their own, outside the HTTP transport (S3's, counted by
    botocore's hooks); registries' requests are counted by the transport."""
    return sum(int(getattr(repo, "requests_sent", 0)) for repo in repos)


async def close_stores(repos: Iterable[Repository]) -> None:
    """Close what stores hold open at the end of a run: a registry repository's upload sessions
    left open are cancelled, an S3 layout's client is closed. Never raises."""
    closers = [close() for repo in repos if callable(close := getattr(repo, "aclose", None))]
    for outcome in await asyncio.gather(*closers, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.warning("closing a store failed: %s", outcome)


def open_repository(
    ref: Ref,
    transport: Transport,
    *,
    create: bool = False,
    max_blob_size: int | None = None,
    s3_settings: Mapping[str, Any] | None = None,
    profile: RegistryProfile | None = None,
    pulls: PullBudgets | None = None,
) -> Repository:
    """A Repository for ``ref``; ``create`` lets a layout destination be made on first write.
    ``s3_settings`` override the environment's S3 options (field names of ``S3Options``);
    ``profile`` is the registry's (by default, the one its host name says); ``pulls`` the pull
    budgets of the pass, for a registry that counts pulls."""
    if isinstance(ref, ImageRef):
        profile = profile or profile_for(ref.host)
        limit = max_blob_size if max_blob_size is not None else profile.max_blob_size
        budget = pulls.for_host(ref.api_host) if pulls is not None and profile.counts_pulls else None
        return RegistryRepository(
            transport, ref.api_host, ref.repository, max_blob_size=limit, profile=profile, pulls=budget
        )
    if isinstance(ref, LayoutRef) and ref.scheme == "oci":
        return OciLayout(ref.location, create=create)
    if isinstance(ref, LayoutRef) and ref.scheme == "s3":
        try:
            from mirror.registry.s3 import S3Layout, S3Options
        except ImportError as exc:  # pragma: no cover - depends on optional pieces
            raise InputError(f"s3:// stores are not available: {exc}") from None
        options = S3Options.from_env()
        if s3_settings:
            options = dataclasses.replace(options, **s3_settings)
        return S3Layout.from_location(ref.location, create=create, options=options)
    raise InputError(f"unsupported reference {ref}")
