"""Fixtures of the process tests: a real OpenBao dev server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openbao import OpenBao, start_openbao


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[OpenBao]:
    """`bao server -dev` on a free loopback port for this test, stopped after it."""
    bao = start_openbao(tmp_path / "openbao")
    try:
        yield bao
    finally:
        bao.stop()
