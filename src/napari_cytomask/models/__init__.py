"""Models: device selection, checkpoints, U-Net and SAM2 engines."""
