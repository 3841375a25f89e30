"""Pyramidal images: results of any resolution level overlay the image's full resolution."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from napari.layers import Image, Labels

from napari_cytomask._qt._layers import labels_layer, level_names, resolution_level
from napari_cytomask._qt.sam2_widget import Sam2Widget
from napari_cytomask._qt.unet_widgets import UNetSegmentWidget
from napari_cytomask._qt.watershed_widget import WatershedWidget
from napari_cytomask.models.checkpoint import DIR_ENV

SCALE, TRANSLATE = (0.65, 0.65), (100.0, -40.0)


def pyramid(image: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """Levels made by averaging 2 × 2 blocks, as pyramidal TIFF writers do."""
    out = [image.astype(np.float32)]
    for _ in range(levels - 1):
        prev = out[-1]
        h, w = prev.shape[-2] // 2 * 2, prev.shape[-1] // 2 * 2
        blocks = prev[..., :h, :w].reshape(*prev.shape[:-2], h // 2, 2, w // 2, 2)
        out.append(blocks.mean(axis=(-3, -1)))
    return out


@pytest.fixture
def phase(shared_data) -> np.ndarray:
    """A real phase-contrast field (Usiigaci set 11), cut to 128 × 192 px."""
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")
    return raw[300:428, 400:592]


def pixel_edges(layer) -> np.ndarray:
    """World coordinates of the outer edges of a layer's first and last pixels."""
    shape = np.asarray(layer.level_shapes[0] if layer.multiscale else layer.data.shape, float)
    return np.array(
        [layer.data_to_world(-0.5 * np.ones(len(shape))), layer.data_to_world(shape - 0.5)]
    )


def test_a_level_and_its_geometry_lay_it_over_level_zero(phase):
    levels = pyramid(np.stack([phase, phase[::-1]]))
    image = Image(levels, multiscale=True, scale=(1.0, *SCALE), translate=(0.0, *TRANSLATE))
    assert level_names(image) == ["full (128 × 192 px)", "1/2 (64 × 96 px)", "1/4 (32 × 48 px)"]
    for k, factor in enumerate((1, 2, 4)):
        data, geometry = resolution_level(image, k)
        assert data is levels[k]
        np.testing.assert_allclose(geometry["scale"], (1.0, *(s * factor for s in SCALE)))
        shift = (factor - 1) / 2 * np.array(SCALE)
        np.testing.assert_allclose(geometry["translate"], (0.0, *(TRANSLATE + shift)))
        # napari's own downsample factors say the same.
        np.testing.assert_allclose(
            geometry["scale"], np.asarray(image.scale) * image.downsample_factors[k]
        )
        labels = Labels(np.zeros(data.shape, np.uint8), **geometry)
        np.testing.assert_allclose(pixel_edges(labels), pixel_edges(image))
        np.testing.assert_allclose(labels._extent_world_augmented, image._extent_world_augmented)
        # Pixel (5, 7) of level k averages a factor × factor block of level 0; its centre
        # is the centre of that block.
        centre = image.world_to_data(labels.data_to_world((1, 5, 7)))
        np.testing.assert_allclose(
            centre, (1, 5 * factor + (factor - 1) / 2, 7 * factor + (factor - 1) / 2)
        )
        block = levels[0][1, 5 * factor : 6 * factor, 7 * factor : 8 * factor]
        assert data[1, 5, 7] == pytest.approx(block.mean(), rel=1e-5)

    single = Image(phase, scale=SCALE, translate=TRANSLATE, rgb=False)
    data, geometry = resolution_level(single)
    assert data is single.data and level_names(single) == ["full (128 × 192 px)"]
    assert geometry["scale"] == SCALE and geometry["translate"] == TRANSLATE
    with pytest.raises(ValueError, match="no level 1"):
        resolution_level(single, 1)

    colour = Image(
        [np.zeros((16, 24, 3), np.uint8), np.zeros((8, 12, 3), np.uint8)], rgb=True, multiscale=True
    )
    data, geometry = resolution_level(colour, 1)
    assert data.shape == (8, 12, 3) and geometry["scale"] == (2.0, 2.0)
    assert geometry["translate"] == (0.5, 0.5)


def test_results_of_a_turned_sheared_or_affine_placed_layer_overlay_it(phase):
    """Results kept the scale and translate only: a rotated image's cells lay unturned."""
    placement = dict(rotate=25, shear=[0.3], affine=[[1, 0.1, 5], [0, 1, -3], [0, 0, 1]])
    image = Image(pyramid(phase), multiscale=True, scale=SCALE, translate=TRANSLATE, **placement)
    for k in range(3):
        data, geometry = resolution_level(image, k)
        result = labels_layer(np.zeros(data.shape, np.uint8), "cells", geometry, {})
        np.testing.assert_allclose(pixel_edges(result), pixel_edges(image))
        # The other two corners as well: a turned square has four.
        shape = np.asarray(image.level_shapes[0], float)
        for corner in ((-0.5, shape[1] - 0.5), (shape[0] - 0.5, -0.5)):
            level_corner = (np.asarray(corner) + 0.5) / (2**k) - 0.5
            np.testing.assert_allclose(
                result.data_to_world(level_corner), image.data_to_world(corner)
            )


@pytest.mark.gui
def test_sam2_labels_of_every_level_overlay_the_image(
    make_napari_viewer_proxy, qtbot, small_model, phase, keep_every_mask
):
    viewer = make_napari_viewer_proxy()
    levels = pyramid(phase)
    image = viewer.add_image(
        levels, multiscale=True, name="phase", scale=SCALE, translate=TRANSLATE
    )
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    viewer.window.add_dock_widget(widget)
    assert widget.level.isVisibleTo(widget)
    assert widget.level.currentIndex() == 0  # full resolution by default
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    name = "phase SAM2 masks"
    for k, factor in ((0, 1), (2, 4)):
        widget.level.setCurrentIndex(k)
        widget.segment()
        qtbot.waitUntil(
            lambda k=k: (
                name in viewer.layers
                and viewer.layers[name].data.shape == levels[k].shape
                and not widget.runner.busy
            ),
            timeout=60_000,
        )
        labels = viewer.layers[name]
        assert labels.data.max() > 0, widget.status.text()
        assert labels.metadata["cytomask"]["parameters"]["level"] == k
        np.testing.assert_allclose(pixel_edges(labels), pixel_edges(image))
        centre = image.world_to_data(labels.data_to_world((3, 10)))
        np.testing.assert_allclose(
            centre, (3 * factor + (factor - 1) / 2, 10 * factor + (factor - 1) / 2)
        )

    # A single-resolution image has no level to choose.
    viewer.add_image(phase, name="flat")
    widget.layer.setCurrentText("flat")
    assert not widget.level.isVisibleTo(widget)


@pytest.mark.gui
def test_results_made_again_after_the_image_moved_lie_over_it(
    make_napari_viewer_proxy, qtbot, small_model, phase, keep_every_mask
):
    """Made again after the image was moved (napari's transform mode sets its affine),
    SAM2's masks and their split took the new cells but stayed where the image had been."""
    viewer = make_napari_viewer_proxy()
    image = viewer.add_image(
        pyramid(phase, levels=2), multiscale=True, name="phase", scale=SCALE, translate=TRANSLATE
    )
    sam2 = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    viewer.window.add_dock_widget(sam2)
    sam2.set_values(points_per_side=4, **keep_every_mask)
    sam2.device.setCurrentText("cpu")
    sam2.level.setCurrentIndex(1)  # the coarser level keeps its own pixels when moved
    split = WatershedWidget(viewer)
    qtbot.addWidget(split)
    split.live.setChecked(False)
    split.mode.setCurrentIndex(split.mode.findData("split"))

    def made():
        with qtbot.waitSignal(sam2.segmented, timeout=60_000) as masks:
            sam2.segment()
        split.input.setCurrentText(masks.args[0].name)
        with qtbot.waitSignal(split.applied, timeout=60_000) as cells:
            split.apply()
        return masks.args[0], cells.args[0]

    first = made()
    image.affine = [[1, 0, 40.0], [0, 1, 25.0], [0, 0, 1]]
    image.translate, image.rotate = (110.0, -20.0), 30
    again = made()
    assert again == first and len(viewer.layers) == 3  # the same layers, updated
    for result in again:
        np.testing.assert_allclose(pixel_edges(result), pixel_edges(image))
        np.testing.assert_allclose(result.rotate, image.rotate)


@pytest.mark.gui
def test_unet_labels_of_a_pyramid_are_at_full_resolution(
    make_napari_viewer_proxy, qtbot, unet_checkpoint, phase, tmp_path, monkeypatch
):
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    viewer = make_napari_viewer_proxy()
    levels = pyramid(phase, levels=2)
    image = viewer.add_image(
        levels, multiscale=True, name="phase", scale=SCALE, translate=TRANSLATE
    )
    widget = UNetSegmentWidget(viewer)
    widget.checkpoint.set_model(unet_checkpoint(64))
    widget.overlap.setValue(16)
    widget.device.setCurrentText("cpu")
    widget.show_maps.setChecked(True)
    widget.segment()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert "phase U-Net cells" in viewer.layers, widget.status.text()
    cells = viewer.layers["phase U-Net cells"]
    interior = viewer.layers["phase U-Net interior"]
    for result in (cells, interior):
        assert result.data.shape == phase.shape
        assert tuple(result.scale) == SCALE and tuple(result.translate) == TRANSLATE
        np.testing.assert_allclose(pixel_edges(result), pixel_edges(image))
