"""tf2onnx's optimizer passes must not keep a copy of the weights per pass (VGG-16 grew to 18 GB)."""
import numpy as np

from export import tf2onnx_memory  # noqa: F401  the fix under test
from tf2onnx.graph import Graph


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_rewriting_a_node_twenty_times_does_not_keep_twenty_copies_of_its_weight():
    graph = Graph([], opset=13)
    weight = graph.make_const("weight", np.full((16, 1024, 1024), 0.5, dtype="float32"))  # 64 MB
    graph.make_node("Relu", [weight.output[0]], name="relu")
    graph.update_proto()
    before = _rss_mb()
    for _ in range(20):  # about one conversion's optimizer passes
        graph.update_proto()
    grew = _rss_mb() - before
    assert grew < 256, f"memory grew by {grew:.0f} MB over 20 rewrites of a 64 MB weight (a copy per rewrite?)"
    value = graph.get_node_by_output(weight.output[0]).op.attribute[0].t
    assert value.dims == [16, 1024, 1024] and len(value.raw_data) == 64 * 2**20
