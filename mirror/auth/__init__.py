"""Credential providers: who we are at each registry. They never talk to a token realm."""
