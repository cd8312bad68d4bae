"""Pure value types: references, digests, descriptors, manifests, errors. No IO."""
