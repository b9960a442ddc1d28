"""Datasets, partitioners, client shards, and who is malicious."""
