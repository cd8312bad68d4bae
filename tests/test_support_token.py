"""The test token server against distribution 2.8's token auth."""

from __future__ import annotations

import math
import time

import pytest
import requests

from tests.support import images, jwt
from tests.support.images import fetch_manifest, push_image
from tests.support.mediatypes import ACCEPT_ALL
from tests.support.registry import RegistryFactory, RegistryHandle
from tests.support.seedclient import parse_challenge

pytestmark = pytest.mark.registry


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def _token(reg: RegistryHandle, *scopes: str, creds: tuple[str, str] | None = None) -> requests.Response:
    assert reg.token_server is not None
    params = [("service", reg.token_server.service), *(("scope", s) for s in scopes)]
    return _session().get(reg.token_server.realm, params=params, auth=creds or reg.creds, timeout=5)


def test_challenge_names_the_token_server(token_registry: RegistryHandle) -> None:
    ts = token_registry.token_server
    assert ts is not None
    r = _session().get(token_registry.url + "/v2/", timeout=5)
    scheme, params = parse_challenge(r.headers["WWW-Authenticate"])
    assert r.status_code == 401 and scheme == "bearer"
    assert params == {"realm": ts.realm, "service": ts.service}


def test_token_response_and_claims(token_registry: RegistryHandle) -> None:
    ts = token_registry.token_server
    assert ts is not None
    before = time.time()
    r = _token(token_registry, "repository:a/b:pull,push", "repository:c:pull")
    body = r.json()
    assert r.status_code == 200 and body["token"] == body["access_token"]
    assert body["expires_in"] == 60 and body["issued_at"].endswith("Z")
    header, claims = jwt.decode_unverified(body["token"])
    assert header == {"typ": "JWT", "kid": ts.identity.key_id, "alg": "ES256"}
    assert (
        claims["iss"] == ts.issuer
        and claims["aud"] == ts.service
        and claims["sub"] == token_registry.username
    )
    assert math.ceil(before + 60) <= claims["exp"] <= math.ceil(time.time() + 60)
    assert claims["access"] == [
        {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
        {"type": "repository", "name": "c", "actions": ["pull"]},
    ]
    (issued,) = ts.issued_to(token_registry.username)
    assert issued.scopes == ("repository:a/b:pull,push", "repository:c:pull") and issued.exp == claims["exp"]
    assert issued.allows("a/b", "push") and not issued.allows("c", "push")
    (req,) = ts.requests_by(token_registry.username)
    assert req.status == 200 and req.method == "GET" and req.service == ts.service


def test_bad_credentials_and_anonymous_requests(registry_factory: RegistryFactory) -> None:
    reg = registry_factory.start(auth="token")
    ts = reg.token_server
    assert ts is not None and reg.username
    assert _token(reg, "repository:x:pull", creds=(reg.username, "nope")).status_code == 401
    anon = _session().get(ts.realm, params={"service": ts.service, "scope": "repository:x:pull"}, timeout=5)
    assert anon.status_code == 401 and anon.headers["WWW-Authenticate"].startswith("Basic ")
    ts.anonymous = "empty"
    anon = _session().get(ts.realm, params={"service": ts.service, "scope": "repository:x:pull"}, timeout=5)
    assert anon.status_code == 200 and jwt.decode_unverified(anon.json()["token"])[1]["access"] == []
    token = anon.json()["token"]
    denied = _session().get(
        reg.url + "/v2/x/tags/list", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert denied.status_code == 401
    assert [r.status for r in ts.requests] == [401, 401, 200]
    assert ts.request_count == 3


def test_oauth2_password_grant(token_registry: RegistryHandle) -> None:
    ts = token_registry.token_server
    assert ts is not None and token_registry.creds
    user, password = token_registry.creds
    form = {
        "grant_type": "password",
        "username": user,
        "password": password,
        "service": ts.service,
        "scope": "repository:a:pull repository:b:pull,push",
        "client_id": "tests",
    }
    r = _session().post(ts.realm, data=form, timeout=5)
    assert r.status_code == 200 and set(r.json()) == {"access_token", "expires_in", "issued_at", "scope"}
    assert len(jwt.decode_unverified(r.json()["access_token"])[1]["access"]) == 2


@pytest.mark.parametrize(
    ("algorithm", "key_header"), [("ES256", "kid"), ("RS256", "kid"), ("ES256", "x5c"), ("RS256", "x5c")]
)
def test_distribution_accepts_tokens(
    registry_factory: RegistryFactory, algorithm: str, key_header: str
) -> None:
    reg = registry_factory.start(auth="token", token_algorithm=algorithm, token_key_header=key_header)
    img = push_image(reg, "signed/app", "v1", [10], seed=algorithm + key_header)
    assert fetch_manifest(reg, "signed/app", "v1", creds=reg.creds).data == img.manifest
    assert reg.token_server is not None
    header = jwt.decode_unverified(reg.token_server.issued[0].token)[0]
    assert header["alg"] == algorithm and key_header in header


def test_distribution_itself_allows_a_minute_of_leeway(token_registry: RegistryHandle) -> None:
    """Why the proxy enforces `exp`: the registry accepts a token up to 60 s after it expired."""
    ts = token_registry.token_server
    assert ts is not None
    push_image(token_registry, "lee/way", "v1", [10], seed="lw")

    def status(ttl: float) -> int:
        token = ts.issue(token_registry.username, ["repository:lee/way:pull"], ttl=ttl).token
        url = token_registry.url + "/v2/lee/way/manifests/v1"
        return (
            _session()
            .head(url, headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT_ALL}, timeout=5)
            .status_code
        )

    assert status(60) == 200 and status(-20) == 200 and status(-90) == 401


def test_injected_token_errors(token_registry: RegistryHandle) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.inject_errors(503, count=2)
    assert [_token(token_registry, "repository:a:pull").status_code for _ in range(3)] == [503, 503, 200]


def test_short_ttl_is_reported(registry_factory: RegistryFactory) -> None:
    reg = registry_factory.start(auth="token", token_ttl=1.5)
    body = _token(reg, "repository:a:pull").json()
    assert body["expires_in"] == 1.5
    assert jwt.decode_unverified(body["token"])[1]["exp"] - time.time() <= 2.5


def test_catalog_scope_with_token_auth(token_registry: RegistryHandle) -> None:
    push_image(token_registry, "cat/one", "v1", [10], seed="c1")
    push_image(token_registry, "cat/two", "v1", [10], seed="c2")
    assert images.list_catalog(token_registry, page_size=1) == ["cat/one", "cat/two"]
    assert token_registry.token_server is not None
    scopes = {s for t in token_registry.token_server.issued for s in t.scopes}
    assert "registry:catalog:*" in scopes
