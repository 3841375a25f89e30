"""Every layer the plugin makes says where it came from; roles and export read it back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from qtpy.QtCore import QSettings

from napari_cytomask._qt.cytomask_dock import CytomaskDock
from napari_cytomask._qt.sam2_widget import LOCAL
from napari_cytomask.io.layers import (
    RESULT_ROLE,
    is_result,
    layer_info,
    model_record,
    result_metadata,
)
from napari_cytomask.models.checkpoint import DIR_ENV
from napari_cytomask.pipeline import Preset
from napari_cytomask.roles import channel_layers, role_of

#: What every result layer records under ``metadata["cytomask"]``.
CONTRACT = {
    "role",
    "source",
    "channel_index",
    "channel_name",
    "method",
    "parameters",
    "model",
    "made_from",
    "versions",
}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def as_json(value):
    """``value`` as it reads back from a JSON file."""
    return json.loads(json.dumps(value))


def test_a_result_of_a_result_still_names_the_scan(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"some weights")
    channel = SimpleNamespace(
        name="phase",
        metadata={
            "cytomask": {
                "source": "/data/scan.tif",
                "channel_index": 2,
                "channel_name": "Phase",
                "role": "input",
            }
        },
    )
    model = model_record("mine", weights)
    assert model == {"name": "mine", "path": str(weights), "sha256": sha256(weights)}
    cells = SimpleNamespace(
        name="phase U-Net cells",
        metadata=result_metadata(channel, method="unet", parameters={"tta": True}, model=model),
    )
    info = layer_info(cells)
    assert set(info) == CONTRACT and info["role"] == RESULT_ROLE and is_result(cells)
    assert (info["source"], info["channel_index"], info["channel_name"]) == (
        "/data/scan.tif",
        2,
        "Phase",
    )
    assert info["made_from"] == {"layer": "phase"}
    assert info["versions"]["napari-cytomask"]

    split = SimpleNamespace(
        name="split", metadata=result_metadata(cells, method="watershed_split", parameters={})
    )
    info = layer_info(split)
    assert info["source"] == "/data/scan.tif" and info["model"] is None
    assert info["made_from"]["layer"] == "phase U-Net cells"
    assert info["made_from"]["model"] == model and info["made_from"]["parameters"] == {"tta": True}
    assert layer_info(SimpleNamespace(metadata={})) == {} and not is_result(channel)
    assert model_record("gone", tmp_path / "missing.pt")["sha256"] is None


@pytest.mark.gui
def test_every_result_records_where_it_came_from_and_export_writes_it(
    make_napari_viewer_proxy,
    qtbot,
    tmp_path,
    monkeypatch,
    shared_data,
    unet_checkpoint,
    small_model,
):
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    scan = shared_data / "usiigaci-phc" / "set11" / "raw.tif"
    viewer = make_napari_viewer_proxy()
    viewer.open(str(scan), plugin="napari-cytomask")
    settings = QSettings(str(tmp_path / "dock.ini"), QSettings.Format.IniFormat)
    dock = CytomaskDock(
        viewer, sam2_model_builder=lambda source, device, config: small_model, settings=settings
    )
    viewer.window.add_dock_widget(dock)

    checkpoint = unet_checkpoint(256)
    dock.unet.checkpoint.set_model(checkpoint)
    assert dock.unet.device.currentText() == dock.sam2.device.currentText() == "auto"
    dock.unet.segment()
    cells = "raw U-Net cells"
    qtbot.waitUntil(lambda: cells in viewer.layers and not dock.unet.runner.busy, timeout=120_000)
    split = f"{cells} split"
    dock.watershed.apply()  # the dock handed the U-Net cells over to be split
    qtbot.waitUntil(
        lambda: split in viewer.layers and not dock.watershed.runner.busy, timeout=60_000
    )
    sam2_file = tmp_path / "sam2-finetuned.pt"
    sam2_file.write_bytes(b"fine-tuned SAM2 weights")
    dock.sam2.model.setCurrentText(LOCAL)
    dock.sam2.checkpoint.setText(str(sam2_file))
    dock.sam2.set_values(
        points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, max_area_fraction=1.0
    )
    dock.sam2.segment()
    masks = "raw SAM2 masks"
    qtbot.waitUntil(lambda: masks in viewer.layers and not dock.sam2.runner.busy, timeout=60_000)

    records = {name: layer_info(viewer.layers[name]) for name in (cells, split, masks)}
    for name, info in records.items():
        assert CONTRACT <= set(info), name
        assert info["role"] == "result" and role_of(viewer.layers[name]) == "result"
        assert info["source"] == str(scan)
        assert (info["channel_index"], info["channel_name"]) == (0, "raw")
        assert info["versions"]["napari-cytomask"]
    unet = records[cells]
    assert unet["method"] == "unet" and unet["made_from"] == {"layer": "raw"}
    model = dict(unet["model"])
    confidence = model.pop("confidence")  # how sure the network was of its cells here
    assert model == {"name": str(checkpoint), "path": str(checkpoint), "sha256": sha256(checkpoint)}
    assert 0.0 < confidence <= 1.0
    assert unet["parameters"]["interior_threshold"] == dock.unet.interior_threshold.value()
    # The device it ran on, as `cytomask segment` records it, not "auto".
    assert unet["parameters"]["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert records[split]["method"] == "watershed_split" and records[split]["model"] is None
    assert records[split]["parameters"] == {
        "params": dock.watershed.params(),
        "cleanup": dock.watershed.cleanup(),
    }
    assert records[split]["made_from"]["layer"] == cells
    assert records[split]["made_from"]["model"] == unet["model"]
    sam2 = records[masks]
    assert sam2["method"] == "sam2"
    assert sam2["model"]["name"] == str(sam2_file) and sam2["model"]["sha256"] == sha256(sam2_file)
    assert sam2["model"]["config"] == dock.sam2.config.currentText()
    assert sam2["parameters"]["params"]["points_per_side"] == 4
    assert sam2["parameters"]["level"] == 0
    assert sam2["parameters"]["device"] == str(small_model.device)

    # Channel roles lists the scan's channel, never a result.
    qtbot.wait(50)
    table = dock.roles.table
    assert [table.cellWidget(row, 0).text() for row in range(table.rowCount())] == ["raw"]
    assert channel_layers(viewer.layers) == [viewer.layers["raw"]]

    # Export from the dock: each provenance file holds what its layer records.
    dock.export.folder.setText(str(tmp_path / "out"))
    dock.steps.setCurrentIndex(4)
    dock.run_current()
    qtbot.waitUntil(lambda: "Wrote" in dock.export.status.text(), timeout=60_000)
    for name, info in records.items():
        provenance = json.loads((tmp_path / "out" / f"{name}_provenance.json").read_text())
        assert provenance["source"] == str(scan) and provenance["channel_name"] == "raw"
        assert provenance["method"] == info["method"]
        assert provenance["parameters"] == as_json(info["parameters"]) != {}
        assert provenance["model"] == info["model"]
        assert provenance["made_from"] == as_json(info["made_from"])
        assert provenance["versions"] == info["versions"]
    unet_provenance = json.loads((tmp_path / "out" / f"{cells}_provenance.json").read_text())
    assert unet_provenance["model"]["sha256"] == sha256(checkpoint)
    # An export's provenance is the preset that makes the result again (`cytomask segment
    # --preset`): a reviewer copied the settings into options by hand.
    presets = {name: Preset.load(tmp_path / "out" / f"{name}_provenance.json") for name in records}
    made = dock.preset()
    assert presets[cells].unet == made.unet and presets[cells].split is None
    assert presets[split].unet == made.unet
    recorded_split = {"params": dock.watershed.params(), "cleanup": dock.watershed.cleanup()}
    assert presets[split].split == recorded_split
    assert presets[cells].channels == presets[split].channels == [0]
    sam2 = presets[masks].sam2
    assert presets[masks].method == "sam2" and sam2.model == str(sam2_file)
    shown = Preset("sam2", sam2=dock.sam2.step()).to_dict()["sam2"]  # as JSON holds it
    assert Preset("sam2", sam2=sam2).to_dict()["sam2"] == {**shown, "model": str(sam2_file)}
