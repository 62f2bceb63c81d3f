from __future__ import annotations

import onnx
import pytest

from nas.errors import RuntimeCheckError
from nas.export import export_module, export_onnx, ort_session
from nas.model import build_model
from nas.model.blocks import AttentionBlock
from nas.spec import MQASpec, Shape
from nas.zoo import get_spec


def test_tiny_model_parity_and_dynamic_batch(tmp_path, tiny_arch):
    res = export_onnx(tiny_arch, tmp_path / "tiny.onnx", dynamic_batch=True)
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    model = onnx.load(str(res.path))
    assert model.opset_import[0].version >= 17
    sess = ort_session(res.path)
    assert sess.get_inputs()[0].shape[0] == "batch"


@pytest.mark.slow
def test_conv_small_parity(tmp_path):
    res = export_onnx(get_spec("mnv4-conv-small"), tmp_path / "cs.onnx")
    assert res.max_abs_diff <= 1e-4
    assert res.input_shape == (1, 3, 224, 224)


def test_mobile_mqa_exports_without_unfusable_transposes(tmp_path):
    block = AttentionBlock(MQASpec(160, heads=4, key_dim=64, kv_stride=2, layer_scale=True), Shape(16, 16, 160))
    res = export_module(block, (1, 160, 16, 16), tmp_path / "mqa.onnx")
    ort_session(res.path, optimized_path=tmp_path / "opt.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "Transpose" not in ops
    assert ops.count("FusedMatMul") == 2  # both attention matmuls absorbed their transposes


def test_failed_parity_is_loud(tmp_path, tiny_arch):
    model = build_model(tiny_arch)
    with pytest.raises(RuntimeCheckError, match="ONNX check failed"):
        export_onnx(
            tiny_arch, tmp_path / "t.onnx", model=model, atol=-1.0
        )  # an impossible tolerance forces the failure path
