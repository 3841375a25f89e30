"""How frames of a stack are named in messages."""

from napari_cytomask.io.layers import frame_heading, named_frame, named_frames


def test_frames_named_by_their_axes():
    """A frame of a time-lapse of several positions was "frame 0,9" in every message: which
    number was the position, and which the time point, was left to the user to guess."""
    axes = ("P", "T", "Y", "X")
    assert named_frame((0, 9), axes) == "position 0, time point 9"
    assert named_frames(["0,1", "1,2"], axes) == "frames (position, time point) 0,1; 1,2"
    assert named_frames(["3"], ("t", "y", "x")) == "time point 3"
    assert named_frames(["1", "2"], ("Z", "Y", "X")) == "planes 1, 2"
    # Keys on the leading axes only are named by those.
    assert named_frames(["1"], axes) == "position 1"


def test_frames_without_axis_names_stay_frames():
    """napari's own labels ("0", "1") or an axis of no known kind name no noun."""
    assert named_frame((2,), ("0", "1", "2")) == "frame 2"
    assert named_frames(["0,1", "1,0"], ("P", "Q", "Y", "X")) == "frames 0,1; 1,0"
    assert named_frames(["0", "2"], None) == "frames 0, 2"
    assert named_frames([], ("T", "Y", "X")) == "no frame"


def test_a_column_of_frames_is_headed_by_their_kind():
    assert frame_heading(("T", "Y", "X"), 1) == "Time point"
    assert frame_heading(("P", "T", "Z", "Y", "X"), 2) == "Position, time point"
    assert frame_heading(("0", "1", "2"), 1) == "Frame"
