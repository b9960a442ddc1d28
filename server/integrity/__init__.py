"""Server-side weight integrity: the reply gate, the run ledger, checkpoints and watermarks.

The primitives both sides share (digests, keys, signatures) live in :mod:`common.crypto`.
"""
