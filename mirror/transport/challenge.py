"""Parse ``WWW-Authenticate`` challenges (RFC 7235) as registries send them. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_CHALLENGE_LENGTH = 8192


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "basic" or "bearer" (others kept but unused)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        scope = self.params.get("scope", "")
        return tuple(scope.split()) if scope else ()


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] not in ' \t,="':
        i += 1
    return text[start:i], i


def _quoted(text: str, i: int) -> tuple[str, int]:
    # text[i] == '"'
    i += 1
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), i  # unterminated: take what is there


def parse_challenges(header: str) -> list[Challenge]:
    """All challenges in a header value; malformed parts are skipped, never raised on."""
    text = header[:MAX_CHALLENGE_LENGTH]
    challenges: list[Challenge] = []
    i = 0
    scheme = ""
    params: dict[str, str] = {}
    while i < len(text):
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        word, j = _token(text, i)
        if not word:
            i = j + 1
            continue
        k = _skip_ws(text, j)
        if k < len(text) and text[k] == "=" and scheme:
            # auth-param: name=value
            k = _skip_ws(text, k + 1)
            if k < len(text) and text[k] == '"':
                value, k = _quoted(text, k)
            else:
                value, k = _token(text, k)
            params[word.lower()] = value
            i = k
            continue
        # a new scheme
        if scheme:
            challenges.append(Challenge(scheme, params))
        scheme, params = word.lower(), {}
        i = j
    if scheme:
        challenges.append(Challenge(scheme, params))
    return challenges


def pick_challenge(header: str) -> Challenge | None:
    """The challenge mirror answers: Bearer when offered, else Basic."""
    found = parse_challenges(header)
    for wanted in ("bearer", "basic"):
        for ch in found:
            if ch.scheme == wanted:
                return ch
    return None
