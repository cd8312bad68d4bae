"""Redactor and its logging filter."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest

from mirror.auth.check import describe
from mirror.auth.credentials import ChainProvider, Credential, StaticProvider
from mirror.auth.redact import REDACTED, RedactingFilter, RedactingProvider, Redactor, credential_secrets


def test_redacts_secrets_and_basic_forms() -> None:
    cred = Credential("alice", "pa$$w0rd.+*")
    r = Redactor()
    r.add_credential(cred)
    basic = base64.b64encode(b"alice:pa$$w0rd.+*").decode()
    text = f"password pa$$w0rd.+* and header Basic {basic} and user alice"
    out = r.redact(text)
    assert "pa$$w0rd" not in out and basic not in out
    assert "user alice" in out  # user names are not secrets
    assert out.count(REDACTED) == 2


def test_longest_secret_first() -> None:
    r = Redactor(["abc", "abcdef"])
    assert r.redact("xx abcdef yy abc") == f"xx {REDACTED} yy {REDACTED}"


def test_tokens_and_min_length() -> None:
    r = Redactor(min_length=4)
    r.add_credential(Credential(identity_token="refresh-tok", registry_token="bearer-tok"))
    r.add("abc")  # too short to be worth scrubbing at this setting
    assert r.redact("refresh-tok bearer-tok abc") == f"{REDACTED} {REDACTED} abc"
    assert len(r) == 2
    assert "refresh" not in repr(r)


def test_empty_redactor_is_identity() -> None:
    assert Redactor().redact("nothing to hide") == "nothing to hide"
    r = Redactor()
    r.add_credential(None)
    r.add("")
    assert len(r) == 0


def test_json_key_base64_forms() -> None:
    pem = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nline2line2line2line2\n"
        "-----END PRIVATE KEY-----\n"
    )
    document = json.dumps({"type": "service_account", "private_key": pem})
    encoded = base64.b64encode(document.encode()).decode()
    secrets = credential_secrets(Credential("_json_key_base64", encoded))
    assert encoded in secrets and document in secrets and pem in secrets
    r = Redactor(secrets)
    leaked = f"body: {document} key line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in r.redact(leaked)
    raw = credential_secrets(Credential("_json_key", document))
    assert json.dumps(pem)[1:-1] in raw  # as escaped inside JSON text


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, Redactor]]:
    redactor = Redactor(["tok-SECRET-1"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("test.auth.redact")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream, redactor
    logger.removeHandler(handler)


def test_log_filter_message_args_exception_stack(
    captured: tuple[logging.Logger, io.StringIO, Redactor],
) -> None:
    logger, stream, redactor = captured
    logger.info("sending %s to %s", "tok-SECRET-1", "r.example")
    redactor.add("late-SECRET-2")  # secrets learned later apply to later records
    try:
        raise ValueError("server said late-SECRET-2 was bad")
    except ValueError:
        logger.exception("failed with %r", {"token": "tok-SECRET-1"})
    logger.warning("stack", stack_info=True)
    out = stream.getvalue()
    assert "SECRET" not in out
    assert "sending <redacted> to r.example" in out
    assert "ValueError: server said <redacted> was bad" in out
    assert "Stack (most recent call last)" in out


def test_log_filter_broken_format(captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    logger, stream, _ = captured
    logger.info("two %s %s", "tok-SECRET-1")  # too few args
    out = stream.getvalue()
    assert "SECRET" not in out and "two" in out


async def test_redacting_provider_learns_what_it_hands_out() -> None:
    redactor = Redactor()
    inner = ChainProvider([StaticProvider(), StaticProvider({"h": Credential("u", "handed-out-secret")})])
    provider = RedactingProvider(inner, redactor)
    assert provider.name == "chain" and provider.providers == inner.providers
    assert await provider.resolve("other") is None
    cred = await provider.resolve("h", min_valid=5)
    assert cred is not None
    assert redactor.redact("x handed-out-secret y") == f"x {REDACTED} y"
    d = await describe("h", provider)
    assert [c.outcome for c in d.consulted] == ["nothing", "answered"]
    assert "handed-out-secret" not in repr(provider)
