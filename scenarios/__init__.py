"""Scenario files (TOML, shipped as package data) and their typed, validated schema."""
