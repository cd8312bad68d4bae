"""Expiry arithmetic on an injected clock, and the single-flight credential cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mirror.auth.credentials import Credential
from mirror.auth.expiry import CredentialCache, anchor_expiry, epoch_of


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_epoch_of_naive_is_utc() -> None:
    naive = datetime(2030, 1, 1, 12, 0, 0)
    aware = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert epoch_of(naive) == epoch_of(aware) == aware.timestamp()


def test_anchor_expiry() -> None:
    clock = FakeClock(500.0)
    assert anchor_expiry(10_000.0, clock, wall=lambda: 9_000.0) == 1_500.0
    assert anchor_expiry(8_000.0, clock, wall=lambda: 9_000.0) == -500.0  # already expired
    # With the wall clock as the clock, nothing changes.
    assert anchor_expiry(12_345.0, lambda: 9_000.0, wall=lambda: 9_000.0) == 12_345.0


def test_anchor_expiry_real_datetime() -> None:
    when = datetime.now(UTC) + timedelta(seconds=3600)
    assert anchor_expiry(epoch_of(when), FakeClock(0.0)) == pytest.approx(3600, abs=2)


class Source:
    def __init__(self, clock: FakeClock, lifetime: float | None = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.count = 0
        self.fail_next = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Credential | None:
        self.count += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("source down")
        expires = None if self.lifetime is None else self.clock() + self.lifetime
        return Credential("u", f"secret-{self.count}", expires_at=expires)


async def test_fresh_enough_uses_min_valid_and_margin() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock, refresh_margin=60, min_refresh_interval=30)
    source = Source(clock)
    first = await cache.get("k", 0, source)
    assert first is not None and first.password == "secret-1"
    clock.now += 3000  # 600 s left
    assert await cache.get("k", 540, source) is first  # 600 >= 540 + 60
    second = await cache.get("k", 541, source)
    assert second is not None and second.password == "secret-2"
    assert cache.fetches == 2


async def test_no_hammering_when_nothing_longer_exists() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock, refresh_margin=60, min_refresh_interval=30)
    source = Source(clock, lifetime=3600)
    first = await cache.get("k", 7200, source)  # asks for more than any token lives
    assert await cache.get("k", 7200, source) is first
    clock.now += 29
    assert await cache.get("k", 7200, source) is first
    clock.now += 2
    assert (await cache.get("k", 7200, source)) is not first
    assert source.count == 2


async def test_expired_answers_are_fetched_again() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock)
    source = Source(clock, lifetime=-10)
    await cache.get("k", 0, source)
    await cache.get("k", 0, source)
    assert source.count == 2


async def test_none_and_non_expiring_stay() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock)
    source = Source(clock, lifetime=None)
    cred = await cache.get("a", 10**9, source)
    clock.now += 10**8
    assert await cache.get("a", 10**9, source) is cred

    async def nothing() -> Credential | None:
        source.count += 1
        return None

    assert await cache.get("b", 0, nothing) is None
    assert await cache.get("b", 0, nothing) is None
    assert source.count == 2


async def test_single_flight_and_shared_failure() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock)
    source = Source(clock)
    source.gate = asyncio.Event()
    source.fail_next = True
    waiters = [asyncio.ensure_future(cache.get("k", 0, source)) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert source.count == 1
    # The failure is not remembered.
    cred = await cache.get("k", 0, source)
    assert cred is not None and source.count == 2


async def test_a_cancelled_caller_does_not_cancel_the_fetch() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock)
    source = Source(clock)
    source.gate = asyncio.Event()
    impatient = asyncio.ensure_future(cache.get("k", 0, source))
    patient = asyncio.ensure_future(cache.get("k", 0, source))
    await asyncio.sleep(0)
    impatient.cancel()
    source.gate.set()
    cred = await patient
    assert cred is not None and source.count == 1
    assert cache.peek("k") is cred


async def test_invalidate() -> None:
    clock = FakeClock()
    cache: CredentialCache[str] = CredentialCache(clock)
    source = Source(clock)
    await cache.get("k", 0, source)
    cache.invalidate("k")
    await cache.get("k", 0, source)
    cache.clear()
    assert cache.peek("k") is None
    assert source.count == 2
