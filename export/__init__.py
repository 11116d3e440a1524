"""Export trained models to SavedModel and ONNX with verified numerical parity."""
