"""``mirror ls REPOSITORY``: the images of a repository, one row per digest (with ``--include-tags``,
their tags), and when each was created where the image says so.

On Artifact Registry (``HOST/PROJECT/REPOSITORY`` or ``HOST/PROJECT/REPOSITORY/IMAGE``) the rows
come from the Artifact Registry API and show what ``gcloud artifacts docker images list``
shows: IMAGE, DIGEST, (TAGS,) CREATE_TIME and UPDATE_TIME, in local time."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mirror.auth.chain import default_chain
from mirror.auth.credentials import StaticProvider
from mirror.cli.options import parse_creds
from mirror.jobs.config import load_config
from mirror.jobs.stores import open_repository
from mirror.registry.base import Repository
from mirror.registry.profiles import ArtifactRegistryProfile, profile_for
from mirror.transport.client import HostOptions, Transport
from mirror.types.digest import Digest
from mirror.types.errors import InputError, MirrorError
from mirror.types.manifest import Manifest, Platform, parse_manifest, platforms
from mirror.types.reference import ImageRef, LayoutRef, parse_reference, validate_host

CREATED = "org.opencontainers.image.created"
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass
class ImageRow:
    image: str
    digest: str
    media_type: str
    tags: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    created: str = ""  # RFC 3339 from the manifest annotation or the image config, when known
    size: int = 0  # bytes of all blobs (and child manifests) the image references


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", help="HOST/PATH, oci:DIR or s3://BUCKET/PREFIX")
    p.add_argument("--include-tags", action="store_true", help="show each image's tags")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--creds", metavar="USER:PASS", help="credentials for the registry")
    p.add_argument("--plain-http", action="store_true", help="talk plain HTTP to the registry")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a mirror config whose registries section applies (kind, location, api_endpoint, "
        "credentials, plain_http)",
    )


async def _config(repo: Repository, manifest: Manifest) -> dict[str, object]:
    """The image config of ``manifest`` when it is small, verified and JSON; else {}."""
    if manifest.config is None or manifest.config.size > MAX_CONFIG_BYTES:
        return {}
    reader = await repo.open_blob(manifest.config)
    chunks: list[bytes] = []
    try:
        async for chunk in reader.chunks():
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_CONFIG_BYTES:
                return {}
    finally:
        await reader.close()
    data = b"".join(chunks)
    if Digest.of(data, manifest.config.digest.algorithm) != manifest.config.digest:
        return {}
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(doc: dict[str, object], key: str) -> str:
    value = doc.get(key, "")
    return value if isinstance(value, str) else ""


async def _describe_image(repo: Repository, manifest: Manifest, row: ImageRow) -> None:
    """Create time and platform of an image manifest, from its annotation and its config."""
    config = await _config(repo, manifest)
    row.created = manifest.annotations.get(CREATED, "") or _text(config, "created")
    os_, arch = _text(config, "os"), _text(config, "architecture")
    if os_ and arch:
        row.platforms = [str(Platform(os_, arch, _text(config, "variant")))]


async def _describe(repo: Repository, digest: str, tags: list[str], limit: asyncio.Semaphore) -> ImageRow:
    async with limit:
        fetched = await repo.get_manifest(digest)
        manifest = parse_manifest(fetched.raw, fetched.media_type, digest=fetched.digest)
        row = ImageRow(repo.name, digest, manifest.media_type, sorted(tags))
        if manifest.is_index:
            row.platforms = platforms(manifest)
            row.size = sum(d.size for d in manifest.manifests)
            row.created = manifest.annotations.get(CREATED, "")
            if not row.created and manifest.manifests:
                child = await repo.get_manifest(str(manifest.manifests[0].digest))
                child_manifest = parse_manifest(child.raw, child.media_type, digest=child.digest)
                row.created = (await _config_row(repo, child_manifest)).created
        else:
            row.size = sum(b.size for b in manifest.references)
            await _describe_image(repo, manifest, row)
        return row


async def _config_row(repo: Repository, manifest: Manifest) -> ImageRow:
    row = ImageRow(repo.name, str(manifest.digest), manifest.media_type)
    await _describe_image(repo, manifest, row)
    return row


async def list_images(repo: Repository) -> list[ImageRow]:
    tags = await repo.list_tags()
    limit = asyncio.Semaphore(16)

    async def head(tag: str) -> tuple[str, str | None]:
        async with limit:
            info = await repo.head_manifest(tag)
        return tag, str(info.digest) if info else None

    by_digest: dict[str, list[str]] = {}
    for tag, digest in await asyncio.gather(*(head(t) for t in tags)):
        if digest is not None:
            by_digest.setdefault(digest, []).append(tag)
    rows = await asyncio.gather(*(_describe(repo, d, t, limit) for d, t in by_digest.items()))
    return sorted(rows, key=lambda row: (row.created, row.digest), reverse=True)


def render_table(rows: list[ImageRow], include_tags: bool) -> str:
    headers = ["IMAGE", "DIGEST", "CREATE_TIME", "PLATFORMS"] + (["TAGS"] if include_tags else [])
    table = [headers]
    for row in rows:
        cells = [row.image, row.digest, row.created or "-", ",".join(row.platforms) or "-"]
        if include_tags:
            cells.append(",".join(row.tags) or "-")
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)


@dataclass
class ArtifactRow:
    image: str
    digest: str
    tags: list[str]
    create_time: str
    update_time: str
    size: int
    media_type: str


def _local_time(stamp: str) -> str:
    """An RFC 3339 time as gcloud's ``date(tz=LOCAL)`` prints it: ``2026-01-01T10:00:00``."""
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return when.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


async def list_artifacts(
    profile: ArtifactRegistryProfile, transport: Transport, path: str
) -> list[ArtifactRow]:
    """The images of ``PROJECT/REPOSITORY[/IMAGE]`` from the Artifact Registry API."""
    project, repository, *image = path.split("/")
    rows = [
        ArtifactRow(
            f"{profile.host}/{found.repository}",
            found.digest,
            sorted(found.tags),
            _local_time(found.upload_time),
            _local_time(found.update_time),
            found.size,
            found.media_type,
        )
        for found in await profile.api(transport).images(project, repository)
        if not image or found.repository == path
    ]
    return sorted(rows, key=lambda row: (row.image, row.create_time, row.digest))


def render_artifacts(rows: list[ArtifactRow], include_tags: bool) -> str:
    headers = ["IMAGE", "DIGEST", *(["TAGS"] if include_tags else []), "CREATE_TIME", "UPDATE_TIME"]
    table = [headers]
    for row in rows:
        tags = [",".join(row.tags)] if include_tags else []
        table.append([row.image, row.digest, *tags, row.create_time, row.update_time])
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)


async def run_ls(ns: argparse.Namespace) -> int:
    ref = parse_reference(ns.repository, default_tag=False)
    if ref.digest is not None or (isinstance(ref, ImageRef) and ref.tag is not None):
        raise InputError(f"{ns.repository!r}: name a repository, without a tag or digest")
    if isinstance(ref, LayoutRef) and ref.tag is not None:
        ref = LayoutRef(ref.scheme, ref.location)
    config = load_config(ns.config) if ns.config else None
    static = StaticProvider(config.credentials() if config else {})
    options: dict[str, HostOptions] = config.host_options() if config else {}
    profile = None
    if isinstance(ref, ImageRef):
        profile = config.profile(ref.host) if config else profile_for(ref.host)
        if ns.creds:
            static.add(ref.api_host, parse_creds(ns.creds, "--creds"))
        if ns.plain_http:
            host = validate_host(ref.api_host)
            options[host] = dataclasses.replace(options.get(host, HostOptions()), plain_http=True)
    async with Transport(default_chain(static), options=options) as transport:
        try:
            if isinstance(profile, ArtifactRegistryProfile) and isinstance(ref, ImageRef):
                if ref.repository.count("/") < 1:
                    raise InputError(f"{ns.repository!r}: name HOST/PROJECT/REPOSITORY[/IMAGE]")
                artifacts = await list_artifacts(profile, transport, ref.repository)
                _print(
                    ns, [asdict(a) for a in artifacts], lambda: render_artifacts(artifacts, ns.include_tags)
                )
                return 0
            repo = open_repository(ref, transport, profile=profile)
            rows = await list_images(repo)
        except InputError:
            raise
        except MirrorError as exc:
            print(f"mirror: {exc.message}", file=sys.stderr)
            return 1
    _print(ns, [asdict(r) for r in rows], lambda: render_table(rows, ns.include_tags))
    return 0


def _print(ns: argparse.Namespace, docs: list[dict[str, Any]], table: Callable[[], str]) -> None:
    if ns.format == "json":
        if not ns.include_tags:
            for doc in docs:
                doc.pop("tags")
        print(json.dumps(docs, indent=2))
    else:
        print(table())
