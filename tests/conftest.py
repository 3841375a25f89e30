"""Shared fixtures.

torch and torchvision are imported before anything creates an OpenGL context:
under Mesa's llvmpipe, loading torch's compiler stack after a viewer exists
crashes the process.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch  # import order matters, see above
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


@pytest.fixture
def collect():
    """Run a progress generator to its end: ``collect(gen) -> (what it yielded, its value)``."""

    def run(gen):
        events = []
        while True:
            try:
                events.append(next(gen))
            except StopIteration as stop:
                return events, stop.value

    return run


@pytest.fixture
def one_thread():
    """One CPU thread: faster than two for tiny models on a shared machine, and reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def validation_scores(monkeypatch):
    """``validation_scores([0.5, 0.4, ...])``: training's validations score these
    mean-average F1s in this order (epoch 0 of fine-tuning, epoch 1, ...); the scores of
    choosing thresholds stay as they are."""
    from napari_cytomask.models import training

    def score_validations(scores):
        evaluate, real, given = training.iter_evaluate, training.scores_of, iter(scores)
        validations = []

        def iter_evaluate(*args, **kwargs):
            validations.append((yield from evaluate(*args, **kwargs)))
            return validations[-1]

        def scores_of(evaluation):
            found = real(evaluation)
            if any(evaluation is v for v in validations):
                found["mean_average_f1"] = next(given)
            return found

        monkeypatch.setattr(training, "iter_evaluate", iter_evaluate)
        monkeypatch.setattr(training, "scores_of", scores_of)

    return score_validations


@pytest.fixture(scope="session")
def tiny_unet() -> dict:
    """UNetConfig arguments of a small, fast U-Net.

    Its encoder has no squeeze-excitation: that global pooling would make every output
    pixel depend on the whole tile, which no tiling can reproduce exactly.
    """
    return {"encoder": "tu-resnet10t", "encoder_depth": 3, "decoder_channels": (32, 16, 8)}


class _MapToLogits(torch.nn.Module):
    """Class logits read off an image that encodes background 0, boundary 0.5, interior 1."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(20.0))  # the predictor finds its device here

    def forward(self, x):
        g = self.gain
        return torch.cat([g * (0.25 - x), g * (x - 0.75), g * (0.25 - (x - 0.5).abs())], dim=1)


@pytest.fixture
def oracle_unet(monkeypatch):
    """Every U-Net checkpoint loads as a stand-in that sees the true cells.

    Its input is a class map drawn as an image (see :func:`class_map_image`);
    it returns that map as probabilities. Results that depend on where the
    image is cut (tiles, watershed windows) can then be compared on real cell
    shapes without training a network.
    """
    from napari_cytomask.models.checkpoint import describe
    from napari_cytomask.models.inference import UNetPredictor
    from napari_cytomask.models.unet import UNetConfig

    config = UNetConfig(encoder_depth=3, tile_size=256)
    predictor = UNetPredictor(_MapToLogits().eval(), config, describe(config))
    monkeypatch.setattr(UNetPredictor, "from_checkpoint", classmethod(lambda *a: predictor))
    return predictor


class _ForegroundLogits(torch.nn.Module):
    """A foreground network's logits read off an image of cells 1 and background 0."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(20.0))  # the predictor finds its device here

    def forward(self, x):
        return torch.cat([self.gain * (0.5 - x), self.gain * (x - 0.5)], dim=1)


@pytest.fixture
def foreground_unet(monkeypatch):
    """Every U-Net checkpoint loads as a stand-in trained on foreground maps at square
    pixels of 0.87 µm, that sees the cells of an image of cells 1 and background 0."""
    from napari_cytomask.models.checkpoint import describe
    from napari_cytomask.models.inference import UNetPredictor
    from napari_cytomask.models.unet import UNetConfig

    config = UNetConfig(encoder_depth=3, tile_size=256, targets="foreground")
    learnt = describe(config, training={"pixel_size_um": [0.87, 0.87]})
    predictor = UNetPredictor(_ForegroundLogits().eval(), config, learnt)
    monkeypatch.setattr(UNetPredictor, "from_checkpoint", classmethod(lambda *a: predictor))
    return predictor


@pytest.fixture(scope="session")
def same_partition():
    """Whether two label images hold the same cells, whatever their ids: the same
    background, and each id of one a single id of the other."""

    def same(a, b) -> bool:
        fa, fb = (np.asarray(x).ravel().astype(np.int64) for x in (a, b))
        if not np.array_equal(fa == 0, fb == 0):
            return False
        pairs = np.unique(np.stack([fa, fb], axis=1), axis=0)
        return len(pairs) == len(np.unique(fa)) == len(np.unique(fb))

    return same


@pytest.fixture
def class_map_image():
    """Instance labels drawn as the oracle U-Net's input image (uint8)."""
    from napari_cytomask.postprocess import instances_to_interior_boundary

    def draw(labels):
        classes = instances_to_interior_boundary(labels, boundary_width=2)
        return np.array([0, 255, 128], np.uint8)[classes]

    return draw


@pytest.fixture(scope="session")
def small_sam2():
    """A small random-weight SAM2 (64² input) whose masks vary enough to test filters on."""
    from napari_cytomask.models.sam2_models import build_sam2_model

    model = build_sam2_model("configs/sam2.1/sam2.1_hiera_t.yaml", image_size=64, seed=0)
    with torch.no_grad():
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(30.0)  # spread the random logits (see test_sam2_engine)
    return model


@pytest.fixture(scope="session")
def unet_checkpoint(tmp_path_factory, tiny_unet):
    """Writes a random-weight tiny U-Net checkpoint: ``make(tile_size, seed) -> Path``."""
    from napari_cytomask.models.checkpoint import describe, save_checkpoint
    from napari_cytomask.models.unet import UNetConfig, build_model

    def make(tile_size: int = 64, seed: int = 1):
        config = UNetConfig(**tiny_unet, tile_size=tile_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _ = build_model(config)
        path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
        return save_checkpoint(path, model, describe(config))

    return make


@pytest.fixture
def scan_and_mask(tmp_path):
    """A scan ``data/well1.tif`` and a mask of the same name in another folder:
    ``make(mask_folder) -> (scan, mask)``, as a lab drive keeps them."""

    def make(mask_folder: str) -> tuple[Path, Path]:
        scan = tmp_path / "data" / "well1.tif"
        mask = tmp_path / mask_folder / "well1.tif"
        scan.parent.mkdir()
        mask.parent.mkdir()
        tifffile.imwrite(scan, np.random.default_rng(0).integers(1, 4000, (32, 32), np.uint16))
        labels = np.zeros((32, 32), np.uint16)
        labels[4:12, 4:12], labels[20:28, 18:30] = 1, 2
        tifffile.imwrite(mask, labels)
        return scan, mask

    return make
