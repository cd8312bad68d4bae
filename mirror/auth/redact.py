"""Scrubbing secrets out of text: logs, reports, error messages.

A :class:`Redactor` collects secret strings as credentials are obtained (passwords, tokens, and
the encoded forms they travel in: base64 of ``user:password`` as in a Basic header or a docker
``auth`` entry, the JSON inside a ``_json_key_base64`` password and its private key) and replaces
every occurrence with ``<redacted>``. :class:`RedactingFilter` applies one to log records,
including their formatted exception and stack text. Attach the filter to *handlers*, so records
from every logger pass through it. :class:`RedactingProvider` wraps a provider and teaches the
redactor every credential it hands out, so the secrets are known before they can be logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Iterable

from mirror.auth.credentials import Credential, CredentialProvider

REDACTED = "<redacted>"


def _b64_forms(raw: bytes) -> set[str]:
    std = base64.b64encode(raw).decode("ascii")
    url = base64.urlsafe_b64encode(raw).decode("ascii")
    return {std, url, std.rstrip("="), url.rstrip("=")}


def _json_key_secrets(text: str) -> set[str]:
    """The private key of a service account key given as JSON text, in the forms it is written."""
    try:
        info = json.loads(text)
    except ValueError:
        return set()
    if not isinstance(info, dict):
        return set()
    found: set[str] = set()
    key = info.get("private_key")
    if isinstance(key, str) and key:
        found.add(key)
        found.add(json.dumps(key)[1:-1])  # as escaped inside a JSON document
        found.update(line for line in key.splitlines() if len(line) >= 16 and not line.startswith("-----"))
    return found


def credential_secrets(cred: Credential) -> set[str]:
    """Every string that would give away one of the credential's secrets."""
    found = set(cred.secrets())
    if cred.password:
        found.update(_b64_forms(f"{cred.username}:{cred.password}".encode()))
    if cred.username == "_json_key":
        found.update(_json_key_secrets(cred.password))
    elif cred.username == "_json_key_base64":
        try:
            decoded = base64.b64decode(cred.password, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded:
            found.add(decoded)
            found.update(_json_key_secrets(decoded))
    return found


class Redactor:
    """A set of secrets and a ``redact(text)`` that removes them. Safe to share between threads.

    Secrets shorter than ``min_length`` are ignored (by default none is).
    """

    def __init__(self, secrets: Iterable[str] = (), *, min_length: int = 1) -> None:
        self.min_length = max(1, min_length)
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(*secrets)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._secrets)} secrets>"

    def __len__(self) -> int:
        return len(self._secrets)

    def add(self, *secrets: str) -> None:
        fresh = {s for s in secrets if s and len(s) >= self.min_length} - self._secrets
        if not fresh:
            return
        with self._lock:
            self._secrets |= fresh
            # Longest first, so a secret that contains another is removed whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_credential(self, cred: Credential | None) -> None:
        if cred is not None:
            self.add(*credential_secrets(cred))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Applies a :class:`Redactor` to a log record's message, exception text and stack text.

    The message is formatted (``msg % args``) and replaced by its redacted text; an exception is
    formatted once here and kept only as redacted text.
    """

    def __init__(self, redactor: Redactor, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingProvider:
    """A provider that adds every credential it hands out to a :class:`Redactor`.

    ``providers`` is the wrapped chain's list (or the wrapped provider alone), so
    :func:`mirror.auth.check.describe` still shows which member answers.
    """

    def __init__(self, inner: CredentialProvider, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor
        self.name = inner.name
        members = getattr(inner, "providers", None)
        self.providers: list[CredentialProvider] = list(members) if members else [inner]

    def __repr__(self) -> str:
        return f"<RedactingProvider of {self.inner!r}>"

    async def resolve(self, host: str, *, min_valid: float = 0.0) -> Credential | None:
        cred = await self.inner.resolve(host, min_valid=min_valid)
        self.redactor.add_credential(cred)
        return cred
