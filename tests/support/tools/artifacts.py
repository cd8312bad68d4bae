"""Artifacts and referrers pushed with the ORAS Python SDK (`oras` 0.2.x), and pulled back with it.

    o = Oras(registry_host, workdir)
    art = o.push_artifact("art/bundle", "v1", {"payload.txt": (b"...", "application/vnd.example.payload")},
                          config=(b'{"kind":"demo"}', "application/vnd.example.config.v1+json"))
    sig = o.push_referrer("art/bundle", art, "sig.txt", b"...", "application/vnd.example.signature.v1")
    sbom = o.push_typed_referrer("art/bundle", art, "application/spdx+json", "sbom.json", b"{}")
    o.write_referrers_index("art/bundle", art, [sig, sbom])    # the referrers tag schema
    o.pull("127.0.0.1:5000/art/bundle:v1", outdir)            # files named by their title annotation

What the SDK cannot do, and how it is done here (oras 0.2.43, distribution 2.8.2):
- `push()` has no top-level `artifactType`: OCI 1.1 artifacts are built by hand and sent with
  `upload_blob` + `upload_manifest`.
- `oras.oci.Subject.from_manifest()` re-serialises the manifest, so its digest is wrong for
  compact JSON (buildah's, skopeo's): subjects are described from the registry's bytes instead.
- `upload_manifest` always sends the OCI manifest media type and validates against the manifest
  schema, and distribution 2.8 has no referrers API: the referrers tag-schema index
  (`sha256-<hex>`) is PUT with plain HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.mediatypes import ACCEPT_ALL, OCI_INDEX, OCI_MANIFEST
from tests.support.tools.base import unavailable

EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
TIMEOUT = 30.0


@dataclass(frozen=True)
class Pushed:
    """A manifest as the registry holds it."""

    repo: str
    digest: str
    media_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def json(self) -> Any:
        return json.loads(self.data)


class Oras:
    def __init__(self, host: str, workdir: Path) -> None:
        try:
            import oras.client
        except ImportError:
            unavailable("the oras Python SDK is not installed (pip install -e '.[test]')")
        self.host = host
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.auth_config = workdir / "docker-config.json"
        self.auth_config.write_text('{"auths": {}}')
        self.client = oras.client.OrasClient(hostname=host, insecure=True)
        self._count = 0

    def manifest(self, repo: str, reference: str) -> Pushed:
        r = requests.get(
            f"http://{self.host}/v2/{repo}/manifests/{reference}",
            headers={"Accept": ACCEPT_ALL},
            timeout=TIMEOUT,
        )
        r.raise_for_status()
        digest = r.headers["Docker-Content-Digest"]
        assert digest == "sha256:" + hashlib.sha256(r.content).hexdigest(), digest
        return Pushed(repo, digest, r.headers["Content-Type"].split(";")[0], r.content)

    def _files(self, files: Mapping[str, tuple[bytes, str]]) -> list[str]:
        self._count += 1
        folder = self.workdir / f"push-{self._count}"
        folder.mkdir()
        specs = []
        for name, (data, media_type) in files.items():
            (folder / name).write_bytes(data)
            specs.append(f"{folder / name}:{media_type}")
        return specs

    def push_artifact(
        self,
        repo: str,
        tag: str,
        files: Mapping[str, tuple[bytes, str]],
        *,
        config: tuple[bytes, str],
        annotations: Mapping[str, str] | None = None,
    ) -> Pushed:
        """An artifact in the pre-1.1 style: its type is the config's media type."""
        specs = self._files(files)
        config_path = Path(specs[0].rsplit(":", 1)[0]).parent / "config.json"
        config_path.write_bytes(config[0])
        r = self.client.push(
            target=f"{self.host}/{repo}:{tag}",
            config_path=str(self.auth_config),
            files=specs,
            manifest_config=f"{config_path}:{config[1]}",
            manifest_annotations=dict(annotations or {}),
            disable_path_validation=True,
            quiet=True,
        )
        r.raise_for_status()
        return self.manifest(repo, r.headers["Docker-Content-Digest"])

    def push_referrer(
        self,
        repo: str,
        subject: Pushed,
        name: str,
        data: bytes,
        media_type: str,
        *,
        config_media_type: str = "application/vnd.example.signature.config.v1+json",
        tag: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Pushed:
        """A referrer through `push(subject=...)`: `{}` config of `config_media_type`, one file."""
        import oras.oci

        self._count += 1
        r = self.client.push(
            target=f"{self.host}/{repo}:{tag or f'referrer-{self._count}'}",
            config_path=str(self.auth_config),
            files=self._files({name: (data, media_type)}),
            manifest_config=f"/nonexistent:{config_media_type}",
            manifest_annotations=dict(annotations or {}),
            subject=oras.oci.Subject(mediaType=subject.media_type, digest=subject.digest, size=subject.size),
            disable_path_validation=True,
            quiet=True,
        )
        r.raise_for_status()
        return self.manifest(repo, r.headers["Docker-Content-Digest"])

    def push_typed_referrer(
        self,
        repo: str,
        subject: Pushed | None,
        artifact_type: str,
        name: str,
        data: bytes,
        *,
        tag: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Pushed:
        """An OCI 1.1 artifact: top-level `artifactType`, the empty config, optionally a `subject`."""
        import oras.defaults
        import oras.oci

        self._count += 1
        container = self.client.get_container(f"{self.host}/{repo}:{tag or f'typed-{self._count}'}")
        empty = {"mediaType": EMPTY_CONFIG, "digest": oras.defaults.blank_config_hash, "size": 2}
        folder = self.workdir / f"typed-{self._count}"
        folder.mkdir()
        (folder / "empty.json").write_bytes(b"{}")
        self.client.upload_blob(str(folder / "empty.json"), container, empty).raise_for_status()
        (folder / name).write_bytes(data)
        layer = oras.oci.NewLayer(str(folder / name), media_type=artifact_type)
        layer["annotations"] = {oras.defaults.annotation_title: name}
        self.client.upload_blob(str(folder / name), container, layer).raise_for_status()
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty,
            "layers": [layer],
            "annotations": dict(annotations or {}),
        }
        if subject is not None:
            manifest["subject"] = {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            }
        r = self.client.upload_manifest(manifest, container)
        r.raise_for_status()
        return self.manifest(repo, r.headers["Docker-Content-Digest"])

    def write_referrers_index(self, repo: str, subject: Pushed, referrers: Sequence[Pushed]) -> Pushed:
        """The referrers tag schema: an index tagged `sha256-<hex of subject>` listing `referrers`."""
        descs = []
        for ref in referrers:
            m = ref.json()
            desc = {"mediaType": ref.media_type, "digest": ref.digest, "size": ref.size}
            desc["artifactType"] = m.get("artifactType") or m["config"]["mediaType"]
            if m.get("annotations"):
                desc["annotations"] = m["annotations"]
            descs.append(desc)
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}, separators=(",", ":")
        ).encode()
        tag = subject.digest.replace(":", "-")
        r = requests.put(
            f"http://{self.host}/v2/{repo}/manifests/{tag}",
            data=body,
            headers={"Content-Type": OCI_INDEX},
            timeout=TIMEOUT,
        )
        r.raise_for_status()
        return self.manifest(repo, tag)

    def pull(self, host: str, repo: str, reference: str, outdir: Path) -> dict[str, bytes]:
        """`pull()` from any registry: the files, by the name their title annotation gives."""
        import oras.client

        client = oras.client.OrasClient(hostname=host, insecure=True)
        sep = "@" if reference.startswith("sha256:") else ":"
        outdir.mkdir(parents=True, exist_ok=True)
        got = client.pull(
            target=f"{host}/{repo}{sep}{reference}", config_path=str(self.auth_config), outdir=str(outdir)
        )
        return {os.path.basename(p): Path(p).read_bytes() for p in got}
