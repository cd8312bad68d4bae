"""Stores behind one protocol: OCI distribution registries, OCI layout directories, S3."""
