"""Destination invariants, read with plain `requests` (independent of the `mirror` package).

    problems = check_complete(handle, "apps/web")     # [] when every tag is complete
    assert_complete(handle, "apps/web")               # the same, as an assertion
    assert_same_repo(src, "apps/web", dst, "mirror/web")

*Complete* means: every tag of the repository names a manifest whose bytes hash to the digest the
registry reports, and everything under it is present -- for an index, every child manifest
(recursively, bounded depth); for an image, its config and every layer (blob HEAD 200). A
dangling tag (listed, but its manifest is gone) is a problem too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.support.images import fetch_manifest, list_tags
from tests.support.mediatypes import ACCEPT_ALL, DOCKER_LIST, OCI_INDEX
from tests.support.seedclient import RegistryError, SeedClient

MAX_DEPTH = 8


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Walker:
    def __init__(self, client: SeedClient, repo: str) -> None:
        self.client = client
        self.repo = repo
        self.blobs: dict[str, bool] = {}
        self.manifests: dict[str, list[str]] = {}

    def blob_present(self, digest: str) -> bool:
        if digest not in self.blobs:
            r = self.client.request(
                "HEAD", f"/v2/{self.repo}/blobs/{digest}", self.repo, actions="pull", expect=(200, 404)
            )
            self.blobs[digest] = r.status_code == 200
        return self.blobs[digest]

    def manifest(self, ref: str, where: str, depth: int) -> list[str]:
        """Problems under the manifest `ref` (a tag or digest)."""
        if ref in self.manifests:
            return self.manifests[ref]
        self.manifests[ref] = [f"{where}: cycle through {ref}"]  # replaced below unless re-entered
        problems = self._manifest(ref, where, depth)
        self.manifests[ref] = problems
        return problems

    def _manifest(self, ref: str, where: str, depth: int) -> list[str]:
        if depth > MAX_DEPTH:
            return [f"{where}: nested deeper than {MAX_DEPTH}"]
        r = self.client.request(
            "GET",
            f"/v2/{self.repo}/manifests/{ref}",
            self.repo,
            actions="pull",
            expect=(200, 404),
            headers={"Accept": ACCEPT_ALL},
        )
        if r.status_code == 404:
            return [f"{where}: manifest {ref} is missing"]
        data = r.content
        computed = _sha256(data)
        problems: list[str] = []
        header = r.headers.get("Docker-Content-Digest", "")
        if header and header != computed:
            problems.append(f"{where}: {ref} is served as {header} but hashes to {computed}")
        if ref.startswith("sha256:") and ref != computed:
            problems.append(f"{where}: {ref} hashes to {computed}")
        try:
            doc = json.loads(data)
        except ValueError:
            return [*problems, f"{where}: {ref} is not JSON"]
        media_type = doc.get("mediaType") or r.headers.get("Content-Type", "")
        if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
            for child in doc.get("manifests") or []:
                problems += self.manifest(child["digest"], f"{where} > {child['digest'][:19]}", depth + 1)
            return problems
        for desc in [doc.get("config"), *(doc.get("layers") or [])]:
            if not isinstance(desc, dict) or not self.blob_present(desc.get("digest", "")):
                problems.append(f"{where}: blob {desc and desc.get('digest')} is missing")
        return problems


def check_complete(handle: Any, repo: str, *, creds: tuple[str, str] | None = None) -> list[str]:
    """Problems with any tag of `repo` at `handle` (an empty list when all is complete)."""
    tags = list_tags(handle, repo, creds=creds)
    problems: list[str] = []
    with SeedClient(handle, creds) as client:
        walker = _Walker(client, repo)
        for tag in sorted(tags):
            try:
                problems += walker.manifest(tag, f"{repo}:{tag}", 0)
            except RegistryError as exc:
                problems.append(f"{repo}:{tag}: {exc}")
    return problems


def assert_complete(handle: Any, repo: str, *, creds: tuple[str, str] | None = None) -> None:
    problems = check_complete(handle, repo, creds=creds)
    assert not problems, "incomplete destination:\n  " + "\n  ".join(problems)


def assert_same_repo(src: Any, src_repo: str, dst: Any, dst_repo: str, tags: list[str] | None = None) -> None:
    """`dst_repo` holds every tag of `src_repo` (or `tags`) with the same manifest bytes and digest,
    and is complete."""
    wanted = sorted(tags if tags is not None else list_tags(src, src_repo))
    assert wanted, f"nothing to compare in {src_repo}"
    for tag in wanted:
        a = fetch_manifest(src, src_repo, tag)
        b = fetch_manifest(dst, dst_repo, tag)
        assert b.digest == a.digest and b.data == a.data, f"{dst_repo}:{tag} differs from the source"
    assert_complete(dst, dst_repo)
