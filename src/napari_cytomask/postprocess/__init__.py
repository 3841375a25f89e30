"""Post-processing of segmentation outputs into clean instance labels (no Qt).

Use :func:`run_watershed` (or the generator :func:`iter_watershed` for progress
and cancelling) for whole images, stacks and images larger than memory; the 2D
building blocks and clean-up functions are exported as well.
"""

from .cleanup import (
    clean_labels,
    close_objects,
    fill_holes,
    filter_by_area,
    open_objects,
    relabel,
    remove_border_objects,
)
from .runner import (
    DEFAULT_CLEANUP,
    WATERSHED_METHODS,
    iter_watershed,
    run_watershed,
    split_counts,
)
from .watershed import (
    MARKER_METHODS,
    distance_markers,
    foreground_mask,
    foreground_to_instances,
    instances_to_interior_boundary,
    interior_boundary_to_instances,
    merge_small_fragments,
    pixel_shape,
    split_labels,
)

__all__ = [
    "DEFAULT_CLEANUP",
    "MARKER_METHODS",
    "WATERSHED_METHODS",
    "clean_labels",
    "close_objects",
    "distance_markers",
    "fill_holes",
    "filter_by_area",
    "foreground_mask",
    "foreground_to_instances",
    "instances_to_interior_boundary",
    "interior_boundary_to_instances",
    "iter_watershed",
    "merge_small_fragments",
    "open_objects",
    "pixel_shape",
    "relabel",
    "remove_border_objects",
    "run_watershed",
    "split_counts",
    "split_labels",
]
