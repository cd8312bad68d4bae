"""Pure value types: references, digests, descriptors, manifests, media types, events, sizes,
registry kinds by host name, the exception tree. No IO.

May import no other room of mirror, and no network or cloud library.
"""
