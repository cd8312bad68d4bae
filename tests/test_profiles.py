"""Registry profiles: which kind a host is, what the config may say about it, and the defaults each
kind brings to the transport. Pure: no registry is contacted."""

from __future__ import annotations

import pytest

from mirror.jobs.config import parse_config
from mirror.registry.profiles import (
    ArtifactRegistryProfile,
    DockerHubProfile,
    EcrProfile,
    EcrPublicProfile,
    RegistryProfile,
    known_max_blob_size,
    profile_for,
)
from mirror.transport.client import HostOptions
from mirror.types.errors import ConfigError


@pytest.mark.parametrize(
    ("host", "cls", "kind"),
    [
        ("europe-west1-docker.pkg.dev", ArtifactRegistryProfile, "artifact-registry"),
        ("us-docker.pkg.dev", ArtifactRegistryProfile, "artifact-registry"),
        ("u-france-east1-docker.s3nsregistry.fr", ArtifactRegistryProfile, "artifact-registry"),
        ("docker.io", DockerHubProfile, "docker-hub"),
        ("registry-1.docker.io", DockerHubProfile, "docker-hub"),
        ("123456789012.dkr.ecr.eu-west-3.amazonaws.com", EcrProfile, "ecr"),
        ("public.ecr.aws", EcrPublicProfile, "ecr-public"),
        ("ghcr.io", RegistryProfile, "distribution"),
        ("127.0.0.1:5000", RegistryProfile, "distribution"),
        ("docker.pkg.dev.evil.example", RegistryProfile, "distribution"),
    ],
)
def test_kind_from_the_host_name(host: str, cls: type, kind: str) -> None:
    profile = profile_for(host)
    assert type(profile) is cls and profile.kind == kind and profile.host == host


@pytest.mark.parametrize(
    ("host", "location", "api"),
    [
        ("europe-west1-docker.pkg.dev", "europe-west1", "https://artifactregistry.googleapis.com"),
        ("us-docker.pkg.dev:443", "us", "https://artifactregistry.googleapis.com"),
        ("u-france-east1-docker.s3nsregistry.fr", "u-france-east1", "https://artifactregistry.s3nsapis.fr"),
    ],
)
def test_artifact_registry_location_and_api_from_the_host(host: str, location: str, api: str) -> None:
    profile = profile_for(host)
    assert isinstance(profile, ArtifactRegistryProfile)
    assert (profile.location, profile.api_endpoint) == (location, api)
    assert known_max_blob_size(host) == 5 * 10**12


def _config(entry: str) -> str:
    return f"""
version: 1
registries:
  "127.0.0.1:5001": {{{entry}}}
jobs:
  - name: dr
    source: 127.0.0.1:5001/proj/repo/*
    destinations: [europe-west1-docker.pkg.dev/proj/dr]
"""


def test_the_config_names_the_kind_of_an_emulator() -> None:
    config = parse_config(
        _config('kind: artifact-registry, location: europe-west1, api_endpoint: "http://127.0.0.1:5002/"')
    )
    profile = config.profile("127.0.0.1:5001")
    assert isinstance(profile, ArtifactRegistryProfile)
    assert (profile.location, profile.api_endpoint) == ("europe-west1", "http://127.0.0.1:5002")
    assert isinstance(parse_config(_config("kind: docker-hub")).profile("127.0.0.1:5001"), DockerHubProfile)
    assert type(parse_config(_config("")).profile("127.0.0.1:5001")) is RegistryProfile


@pytest.mark.parametrize(
    ("entry", "path", "says"),
    [
        ("kind: artifact-registry", "location", "set location (e.g. europe-west1)"),
        ("kind: artifact-registry, location: europe-west1", "api_endpoint", "set api_endpoint"),
        ("kind: ecr, location: europe-west1", "location", "apply to Artifact Registry only"),
        ('api_endpoint: "http://127.0.0.1:5002"', "api_endpoint", "set kind: artifact-registry"),
        ("kind: quay", "kind", "'artifact-registry', 'docker-hub', 'ecr', 'ecr-public' or 'distribution'"),
        (
            'kind: artifact-registry, location: europe-west1, api_endpoint: "ftp://x"',
            "api_endpoint",
            "pattern",
        ),
    ],
)
def test_profile_settings_that_do_not_fit_are_config_errors(entry: str, path: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(entry))
    assert caught.value.path == f'registries["127.0.0.1:5001"].{path}'
    assert says in caught.value.message


def test_profiles_complete_the_transport_options() -> None:
    config = parse_config(
        _config('kind: artifact-registry, location: europe-west1, api_endpoint: "http://127.0.0.1:5002"')
    )
    options = config.host_options()
    # Artifact Registry hosts get a request rate under the project quotas, configured or not ...
    assert options["127.0.0.1:5001"].requests_per_second == 250.0
    assert options["europe-west1-docker.pkg.dev"].requests_per_second == 250.0
    # ... unless the config sets one; other kinds get no limit.
    config = parse_config(_config("requests_per_second: 40, plain_http: true"))
    assert config.host_options()["127.0.0.1:5001"] == HostOptions(plain_http=True, requests_per_second=40.0)
    assert profile_for("ghcr.io").host_options() == HostOptions()
