"""pytest fixtures for real registries, proxies and token servers (registered by tests/conftest.py).

    registry_factory.start(auth="none"|"htpasswd"|"token", token_ttl=60.0, **options) -> RegistryHandle
    registry            a plain registry (auth="none")
    registry_pair       (source, destination), both plain
    htpasswd_registry   a registry with Basic auth
    token_registry      a registry with token auth (handle.token_server is set)
    proxy_factory.start(upstream, reject_expired=False) -> RegistryProxy

Everything is function-scoped, bound to 127.0.0.1, and stopped at teardown. When Debian's
`docker-registry` is missing, the registry fixtures skip the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxy import RegistryProxy
from tests.support.registry import RegistryFactory, RegistryHandle, registry_binary


class ProxyFactory:
    def __init__(self) -> None:
        self.proxies: list[RegistryProxy] = []

    def start(self, upstream: Any, *, reject_expired: bool = False) -> RegistryProxy:
        proxy = RegistryProxy(upstream, reject_expired=reject_expired)
        self.proxies.append(proxy)
        return proxy.start()

    def stop_all(self) -> None:
        for proxy in reversed(self.proxies):
            proxy.stop()
        self.proxies.clear()


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    if registry_binary() is None:
        pytest.skip("Debian's docker-registry is not installed")
    factory = RegistryFactory(Path(tmp_path_factory.mktemp("registries")))
    try:
        yield factory
    finally:
        factory.stop_all(remove_storage=True)


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryHandle:
    return registry_factory.start()


@pytest.fixture
def registry_pair(registry_factory: RegistryFactory) -> tuple[RegistryHandle, RegistryHandle]:
    return registry_factory.start(), registry_factory.start()


@pytest.fixture
def htpasswd_registry(registry_factory: RegistryFactory) -> RegistryHandle:
    return registry_factory.start(auth="htpasswd")


@pytest.fixture
def token_registry(registry_factory: RegistryFactory) -> RegistryHandle:
    return registry_factory.start(auth="token")


@pytest.fixture
def proxy_factory() -> Iterator[ProxyFactory]:
    factory = ProxyFactory()
    try:
        yield factory
    finally:
        factory.stop_all()
