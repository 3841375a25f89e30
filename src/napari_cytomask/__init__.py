"""napari-cytomask: cell (cytoplasm) masks from brightfield tile scans in napari."""

try:
    from ._version import version as __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
