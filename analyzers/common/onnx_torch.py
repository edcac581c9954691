"""Packaged ONNX models run by torch, on any torch device: the GPU path for models that ship as ONNX.

onnxruntime's CUDA build (onnxruntime-gpu) is not installed here, and it cannot sit beside the CPU build
that faster-whisper and the packaged models need. torch runs on every GPU reelscope supports, so a packaged
ONNX model is converted to a torch module once at load with onnx2torch (a maintained converter on PyPI),
then wrapped so that code written against an onnxruntime session (RapidOCR's) calls it unchanged.

Paddle2ONNX's exports (PP-OCR) keep their weights in Constant nodes and leave some tensors without a shape,
which onnx2torch needs (as initializers, and the rank of a BatchNormalization's input): `torch_module`
moves the constants into initializers and gives such an input the rank of the convolution that makes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _prepared(path: Path) -> Any:
    """The ONNX model at `path` with constants as initializers and every BatchNormalization input's rank
    known (shape inference, then the producing convolution's weight rank where inference gave none)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "Constant"]:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if value is None:
            continue
        tensor = onnx.TensorProto()
        tensor.CopyFrom(value.t)
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        graph.node.remove(node)
    initialized = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialized]
    del graph.input[:]
    graph.input.extend(inputs)
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    shaped = {v.name: v for v in graph.value_info if v.type.tensor_type.shape.dim}
    shaped.update({v.name: v for v in graph.input})
    producers = {out: node for node in graph.node for out in node.output}
    weights = {t.name: len(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "BatchNormalization" or node.input[0] in shaped:
            continue
        producer = producers.get(node.input[0])
        if producer is None or producer.op_type != "Conv" or producer.input[1] not in weights:
            raise ValueError(f"{path.name}: the rank of {node.input[0]!r} (into {node.name}) is unknown")
        rank = weights[producer.input[1]]  # a convolution's output has the rank of its weight
        dims = [f"{node.input[0]}_{i}" for i in range(rank)]
        graph.value_info.append(
            onnx.helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, dims)
        )
    return model


def torch_module(path: Path, device: Any) -> Any:
    """The ONNX model at `path` as an eval-mode torch module on `device`."""
    from onnx2torch import convert

    return convert(_prepared(path)).eval().to(device)


class TorchSession:
    """What RapidOCR calls of an onnxruntime InferenceSession (`run`, `get_inputs`, `get_outputs`,
    `get_modelmeta`, `get_providers`), served by the same model converted to torch on `device`. Names and
    metadata (the recogniser's character list) are the original session's."""

    def __init__(self, path: Path, device: Any, original: Any) -> None:
        import torch

        self.device = torch.device(device)
        self.module = torch_module(path, self.device)
        self._inputs = original.get_inputs()
        self._outputs = original.get_outputs()
        self._meta = original.get_modelmeta()

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        (array,) = feed.values()
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(array)).to(self.device))
        outs = out if isinstance(out, list | tuple) else [out]
        return [o.float().cpu().numpy() for o in outs]

    def get_inputs(self) -> Any:
        return self._inputs

    def get_outputs(self) -> Any:
        return self._outputs

    def get_modelmeta(self) -> Any:
        return self._meta

    def get_providers(self) -> list[str]:
        return [f"torch:{self.device}"]
