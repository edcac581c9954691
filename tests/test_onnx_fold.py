"""Folding scalar steps into convolutions (analyzers/common/onnx_fold.py) on small hand-made graphs: the
same outputs as onnxruntime gives for the original graph, and no fold where it would not be exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from reelscope.analyzers.common.onnx_fold import fold_model  # noqa: E402

RNG = np.random.default_rng(0)


def const(name: str, value: Any) -> Any:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def lcnet_block(pads: list[int], scale2: float = 0.7) -> Any:
    """conv -> *s +b -> hard-swish (x * clip(x+3, 0, 6) / 6) -> *s2 +b2 -> conv (padded as given)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["s", "c1"], ["m1"]),
        helper.make_node("Add", ["m1", "b"], ["y"]),
        helper.make_node("Add", ["y", "three"], ["y3"]),
        helper.make_node("Clip", ["y3", "zero", "six"], ["cl"]),
        helper.make_node("Mul", ["y", "cl"], ["ym"]),
        helper.make_node("Div", ["ym", "six"], ["hs"]),
        helper.make_node("Mul", ["s2", "hs"], ["h2"]),
        helper.make_node("Add", ["h2", "b2"], ["h3"]),
        helper.make_node("Conv", ["h3", "w2", "b3"], ["out"], pads=pads),
    ]
    k = 3 if any(pads) else 1
    inits = [
        const("w1", RNG.normal(0, 0.5, (8, 3, 3, 3))),
        const("b1", RNG.normal(0, 0.5, 8)),
        const("s", [1.7]),
        const("b", [0.3]),
        const("three", 3.0),
        const("zero", 0.0),
        const("six", 6.0),
        const("s2", [scale2]),
        const("b2", [-0.2]),
        const("w2", RNG.normal(0, 0.5, (4, 8, k, k))),
        const("b3", RNG.normal(0, 0.5, 4)),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 16, 16])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def run(model: Any, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("scale2", [0.7, -1.3])
def test_block_folds_to_conv_hardsigmoid_mul_conv(scale2: float) -> None:
    model = lcnet_block([0, 0, 0, 0], scale2)
    x = RNG.normal(0, 2, (1, 3, 16, 16)).astype(np.float32)
    before = run(model, x)
    assert fold_model(model) == {"affine_into_conv": 1, "hard_swish": 1, "shift_into_next_conv": 1}
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Conv", "HardSigmoid", "Mul", "Conv"]
    assert np.allclose(run(model, x), before, atol=1e-4)


def test_shift_stays_before_a_padded_conv() -> None:
    """Padding is zeros of the shifted input: folding the shift there would be wrong at the borders."""
    model = lcnet_block([1, 1, 1, 1])
    x = RNG.normal(0, 2, (1, 3, 16, 16)).astype(np.float32)
    before = run(model, x)
    assert fold_model(model)["shift_into_next_conv"] == 0
    assert "Add" in [n.op_type for n in model.graph.node]
    assert np.allclose(run(model, x), before, atol=1e-4)


def test_folding_twice_changes_nothing_more() -> None:
    model = lcnet_block([0, 0, 0, 0])
    x = RNG.normal(0, 2, (1, 3, 16, 16)).astype(np.float32)
    before = run(model, x)
    fold_model(model)
    assert fold_model(model) == {"affine_into_conv": 0, "hard_swish": 0, "shift_into_next_conv": 0}
    assert np.allclose(run(model, x), before, atol=1e-4)
