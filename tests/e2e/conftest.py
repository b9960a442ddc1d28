"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e._ray_head import loopback_head


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A 2-CPU Ray head on loopback for the module's tests (:mod:`tests.e2e._ray_head`)."""
    with loopback_head() as head:
        yield head
