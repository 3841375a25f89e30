"""Fixtures shared by the widget tests."""

from __future__ import annotations

import pytest
import torch
from napari.utils.notifications import notification_manager


@pytest.fixture
def small_model(small_sam2):
    """The small random SAM2 on one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra OpenMP threads only wait on each other
    yield small_sam2
    torch.set_num_threads(threads)


@pytest.fixture
def keep_every_mask() -> dict:
    """SAM2 filter settings that keep every candidate mask (random weights score low)."""
    return {
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
        "max_area_fraction": 1.0,
    }


@pytest.fixture
def sam2_weights_of():
    """Writes a checkpoint with the names and shapes of a SAM2 model's weights (each of one
    stored number: small files), as Meta publishes them: ``(model_id, path) -> path``."""
    from napari_cytomask.models.sam2_models import HF_MODELS, build_sam2_model

    def write(model_id: str, path) -> str:
        state = build_sam2_model(HF_MODELS[model_id][0], image_size=64).state_dict()
        weights = {k: v.new_zeros(1).expand(v.shape) for k, v in state.items()}
        torch.save({"model": weights}, path)
        return str(path)

    return write


@pytest.fixture
def notifications():
    """Every notification napari shows (errors of workers included), as text."""
    shown: list[str] = []

    def record(notification):
        shown.append(str(notification.message))

    notification_manager.notification_ready.connect(record)
    yield shown
    notification_manager.notification_ready.disconnect(record)
