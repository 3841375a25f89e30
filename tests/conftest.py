"""Shared fixtures.

torch and torchvision are imported before anything creates an OpenGL context:
under Mesa's llvmpipe, loading torch's compiler stack after a viewer exists
crashes the process.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch  # noqa: F401  (import order matters, see above)
import torchvision  # noqa: F401

_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real microscopy data in ``../shared/data`` (or ``$CYTOMASK_TEST_DATA``).

    Tests that need it fail, never skip, when it is missing.
    """
    path = Path(os.environ.get("CYTOMASK_TEST_DATA", _DEFAULT_DATA)).resolve()
    if not (path / "README.md").is_file():
        pytest.fail(
            f"Real test data not found at {path}. Put the project's shared/ folder beside "
            "the repository or set CYTOMASK_TEST_DATA to its data/ folder."
        )
    return path


@pytest.fixture(scope="session")
def tiny_unet() -> dict:
    """UNetConfig arguments of a small, fast U-Net.

    Its encoder has no squeeze-excitation: that global pooling would make every output
    pixel depend on the whole tile, which no tiling can reproduce exactly.
    """
    return {"encoder": "tu-resnet10t", "encoder_depth": 3, "decoder_channels": (32, 16, 8)}
