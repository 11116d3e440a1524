"""export turns a trained model into a verified deployment artifact: convert, verify, package.

    python -m export runs/mnist_cnn/model.keras --formats savedmodel,onnx,onnx_int8 --out artifacts/mnist_cnn
    python -m export predict artifacts/mnist_cnn digit.png

Conversion and validation are separate steps, as in optimum's exporters: `job` (the request and
the export-ready model) -> `convert` (SavedModel, ONNX, fp16) and `quantize` (int8) -> `verify`
(figures and verdicts), `locate` (first diverging layer) -> `manifest`, `package` (sha256, atomic
directory); `pipeline` runs them in order. `runtimes` opens every runtime session (the one place
for providers, threads and precision) and with `predict` needs no TensorFlow; this file imports
nothing so that it stays so.
"""
