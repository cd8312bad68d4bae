"""Test infrastructure: real registries on loopback, a token server, a recording proxy, seeding helpers."""
