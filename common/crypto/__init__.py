"""Digests, keys and Ed25519 signatures: what the client signs and the server verifies."""
