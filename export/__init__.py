"""Export trained models to SavedModel and ONNX with verified numerical parity.

    python -m export runs/mnist_cnn/model.keras --formats savedmodel,onnx,onnx_int8 --out artifacts/mnist_cnn
    python -m export predict artifacts/mnist_cnn digit.png

Conversion and validation are separate steps, as in optimum's exporters:
`checkpoint` (load, float32 rebuild, main output) -> `convert` (SavedModel, ONNX, fp16) and
`quantize` (int8) -> `verify` (figures and verdict), `locate` (first diverging layer),
`speed` -> `package` (manifest, sha256, atomic directory). `predict` needs no TensorFlow;
this file imports nothing so that it stays so.
"""
