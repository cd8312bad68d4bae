"""The default provider chain: explicit credentials, docker config, Google, ECR, ECR Public.

The first provider with a non-anonymous answer for a host wins (:class:`ChainProvider`). The
cloud providers only answer for their own registry hosts and touch nothing (no file, no network)
for other hosts: Google only for Google registry hosts and only with application default
credentials that exist; ECR only for ``*.dkr.ecr.*`` hosts; ECR Public only for
``public.ecr.aws``, and only when AWS credentials exist (anonymous pulls otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mirror.auth.credentials import ChainProvider, Credential, CredentialProvider, StaticProvider
from mirror.auth.dockerconfig import DockerConfigProvider
from mirror.auth.ecr import EcrProvider
from mirror.auth.ecrpublic import EcrPublicProvider
from mirror.auth.google import ApplicationDefault, GoogleProvider
from mirror.types.clock import Clock, system_clock


def default_chain(
    explicit: StaticProvider | Mapping[str, Credential] | None = None,
    *,
    clock: Clock = system_clock,
    docker_config: DockerConfigProvider | bool = True,
    docker_config_path: str | os.PathLike[str] | None = None,
    google: GoogleProvider | bool = True,
    ecr: EcrProvider | bool = True,
    ecr_public: EcrPublicProvider | bool = True,
    extra: list[CredentialProvider] | None = None,
) -> ChainProvider:
    """explicit -> docker config -> Google -> ECR -> ECR Public (-> ``extra``), sharing one clock.

    Each of ``docker_config``, ``google`` and ``ecr`` is ``True`` for the default provider,
    ``False`` to leave it out, or a configured provider. The default Google provider uses
    application default credentials when there are any.
    """
    providers: list[CredentialProvider] = []
    if isinstance(explicit, StaticProvider):
        providers.append(explicit)
    else:
        providers.append(StaticProvider(dict(explicit or {})))
    if docker_config is True:
        providers.append(DockerConfigProvider(docker_config_path, clock=clock))
    elif isinstance(docker_config, DockerConfigProvider):
        providers.append(docker_config)
    if google is True:
        providers.append(GoogleProvider(ApplicationDefault(optional=True), clock=clock))
    elif isinstance(google, GoogleProvider):
        providers.append(google)
    if ecr is True:
        providers.append(EcrProvider(clock=clock))
    elif isinstance(ecr, EcrProvider):
        providers.append(ecr)
    if ecr_public is True:
        providers.append(EcrPublicProvider(clock=clock))
    elif isinstance(ecr_public, EcrPublicProvider):
        providers.append(ecr_public)
    providers.extend(extra or [])
    return ChainProvider(providers, clock=clock)
