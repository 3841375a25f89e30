"""Reading TIFF tile scans into channel layers, and writing label images."""
