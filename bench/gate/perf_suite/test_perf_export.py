"""Conversion time of a small Keras model to ONNX (opset 17) by `export.convert.to_onnx`."""
import perf_systems


def test_export_onnx(measure, tmp_path):
    run = perf_systems.make_export(perf_systems.perf_gate_cnn(), tmp_path)
    measure(run, model="perf_gate_cnn", code_root=perf_systems.code_root())
