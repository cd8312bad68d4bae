"""Stores behind one protocol: OCI distribution registries, OCI layout directories, S3; and what
differs per kind of registry (``profiles``: Artifact Registry, Docker Hub, ECR, ...).

May import ``transport``, ``auth`` and ``types``.
"""
