"""Credential providers: who we are at each registry. They never talk to a token realm.

- ``credentials``: the Credential type, the provider protocol, StaticProvider, ChainProvider;
- ``dockerconfig``: docker's config.json and its credential helpers;
- ``google`` (+ ``googlehttp``): Google access tokens and service account keys, by universe;
- ``ecr``: Amazon ECR GetAuthorizationToken;
- ``chain``: the default chain (explicit -> docker config -> Google -> ECR);
- ``expiry``: expiry arithmetic on the injected clock and the single-flight credential cache;
- ``redact``: scrubbing secrets out of logs and reports;
- ``check``: describing which provider answers for a host (``mirror auth check``).

May import ``types`` only.
"""
