"""Classic image-classification architectures, built by name."""
