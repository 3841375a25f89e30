import pytest
from napari.layers import Image, Labels

from napari_cytomask._qt.channel_roles import ChannelRolesWidget

pytestmark = pytest.mark.gui


def test_sample_data_opens_in_a_real_viewer(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    assert [type(layer) for layer in viewer.layers] == [Image, Image, Labels]
    assert viewer.layers["Mask (ground truth)"].data.max() > 40
    assert viewer.dims.axis_labels[0] == "P"


def test_channel_roles_dock_converts_a_channel(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.table.rowCount() == 3
    picker = widget.table.cellWidget(2, 2)
    assert picker.currentData() == "mask"
    picker.setCurrentIndex(picker.findData("image"))
    qtbot.waitUntil(lambda: isinstance(viewer.layers[2], Image))
    qtbot.waitUntil(lambda: widget.table.cellWidget(2, 2).currentData() == "image")
    assert viewer.layers[2].name == "Mask (ground truth)"
