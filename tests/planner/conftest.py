from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import NAB


@pytest.fixture
def nab() -> Path:
    return NAB
