"""HTTP transport: auth challenges and tokens, retries, limits, error mapping. Knows no images.

May import ``auth`` and ``types``.
"""
