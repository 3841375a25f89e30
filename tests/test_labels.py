import numpy as np

from napari_cytomask.labels import largest_elsewhere, numbered_above


def test_a_frame_made_alone_is_numbered_above_the_other_frames_in_a_type_that_holds_it():
    stack = np.zeros((2, 3, 4, 4), np.uint8)
    stack[0, 1, 0, 0], stack[1, 2, 0, 0], stack[1, 0, 3, 3] = 250, 9, 255
    assert largest_elsewhere(stack, (1, 0)) == 250  # the 255 of the frame itself is left out
    assert largest_elsewhere(stack[0, 0], ()) == 0
    plane = np.array([[0, 3], [5, 3]], np.uint8)
    assert numbered_above(plane, 250).tolist() == [[0, 251], [253, 251]]
    moved = numbered_above(plane, 253)  # 256 does not fit in 8 bits
    assert moved.dtype == np.uint16 and moved.tolist() == [[0, 254], [256, 254]]
    assert plane.tolist() == [[0, 3], [5, 3]]  # the caller's frame is not changed
    assert numbered_above(plane, 2) is plane  # numbered above already: as it is
    assert numbered_above(np.zeros((2, 2), np.uint8), 9).max() == 0
