"""Fold the scalar element-wise steps of a CNN's ONNX graph into its convolutions, before onnxruntime runs it.

PaddleOCR's PP-LCNetV3 backbones (the PP-OCRv4 text detector and recogniser) follow each convolution with a
"learnable affine block" (multiply by a scalar, add a scalar), a hard-swish spelt as four operators
(`x * clip(x + 3, 0, 6) / 6`) and a second affine block. onnxruntime fuses none of them, so every one is a
pass over a whole feature map, and each forces the convolution's output out of its blocked layout and back:
a third of the detector's time. Here:

- `conv -> * s -> + b` becomes one convolution (weights times s, bias times s plus b);
- the hard-swish becomes `x * HardSigmoid(x)`, two passes, and a following `* s2` moves into the convolution
  that made x (HardSigmoid's slope divided by s2, so it still sees x);
- `+ b2` feeding only unpadded convolutions moves into their biases (b2 times the sum of their weights).

The same arithmetic in another order: outputs move by float rounding (~1e-6 on the detector's probability
map); tests/test_ocr_cost.py checks the readings are the same.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


def fold_model(model: Any) -> dict[str, int]:
    """Rewrite an `onnx.ModelProto` in place; how many of each fold were made."""
    return _Folder(model).run()


class _Folder:
    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.graph = model.graph
        self.to_array = numpy_helper.to_array
        self.from_array = numpy_helper.from_array
        self.const: dict[str, np.ndarray] = {}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.const[node.output[0]] = self.to_array(node.attribute[0].t)
        for init in self.graph.initializer:
            self.const[init.name] = self.to_array(init)
        self.outputs = {o.name for o in self.graph.output}
        self.prefix = "folded"
        while any(name.startswith(self.prefix) for name in self.const):
            self.prefix += "_"  # a graph folded before: new names stay new
        self.count = 0

    def run(self) -> dict[str, int]:
        return {
            "affine_into_conv": self._affine_into_conv(),
            "hard_swish": self._hard_swish(),
            "shift_into_next_conv": self._shift_into_next_conv(),
        }

    # helpers
    def _consumers(self) -> dict[str, list[Any]]:
        users: dict[str, list[Any]] = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                users[name].append(node)
        return users

    def _scalar(self, name: str) -> float | None:
        value = self.const.get(name)
        return float(value.ravel()[0]) if value is not None and value.size == 1 else None

    def _only_user(self, users: dict[str, list[Any]], name: str, op: str) -> Any | None:
        """The single node reading `name`, when it is an `op` and `name` is no graph output."""
        nodes = users.get(name, [])
        if name in self.outputs or len(nodes) != 1 or nodes[0].op_type != op:
            return None
        return nodes[0]

    @staticmethod
    def _operand(node: Any, name: str) -> str:
        return node.input[1] if node.input[0] == name else node.input[0]

    def _conv_params(self, conv: Any) -> tuple[np.ndarray, np.ndarray]:
        weights = self.const[conv.input[1]].astype(np.float64)
        has_bias = len(conv.input) > 2 and conv.input[2]
        bias = self.const[conv.input[2]].astype(np.float64) if has_bias else np.zeros(weights.shape[0])
        return weights, bias

    def _set_conv(self, conv: Any, weights: np.ndarray | None, bias: np.ndarray) -> None:
        """New initializers for the convolution's weights (when given) and bias (the old may be shared)."""
        self.count += 1
        names = [conv.input[0], conv.input[1], f"{self.prefix}_{self.count}_b"]
        if weights is not None:
            names[1] = f"{self.prefix}_{self.count}_w"
            self.graph.initializer.append(self.from_array(weights.astype(np.float32), names[1]))
            self.const[names[1]] = weights.astype(np.float32)
        self.graph.initializer.append(self.from_array(bias.astype(np.float32), names[2]))
        self.const[names[2]] = bias.astype(np.float32)
        del conv.input[:]
        conv.input.extend(names)

    def _replace(
        self, drop: set[int], renames: dict[str, str], insert: dict[int, list[Any]] | None = None
    ) -> None:
        nodes = []
        for node in self.graph.node:
            if id(node) in drop:
                nodes.extend((insert or {}).get(id(node), []))
                continue
            for k, name in enumerate(node.input):
                if name in renames:
                    node.input[k] = renames[name]
            nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)

    def _producers(self) -> dict[str, Any]:
        return {out: node for node in self.graph.node for out in node.output}

    # folds
    def _affine_into_conv(self) -> int:
        users = self._consumers()
        drop: set[int] = set()
        renames: dict[str, str] = {}
        for conv in [n for n in self.graph.node if n.op_type == "Conv" and n.input[1] in self.const]:
            out = conv.output[0]
            mul = self._only_user(users, out, "Mul")
            if mul is None or (scale := self._scalar(self._operand(mul, out))) is None:
                continue
            add = self._only_user(users, mul.output[0], "Add")
            if add is None or (shift := self._scalar(self._operand(add, mul.output[0]))) is None:
                continue
            weights, bias = self._conv_params(conv)
            self._set_conv(conv, weights * scale, bias * scale + shift)
            renames[add.output[0]] = out
            drop.update((id(mul), id(add)))
        self._replace(drop, renames)
        return len(drop) // 2

    def _hard_swish(self) -> int:
        from onnx import helper

        users = self._consumers()
        made = self._producers()
        drop: set[int] = set()
        renames: dict[str, str] = {}
        insert: dict[int, list[Any]] = {}
        for add3 in [n for n in self.graph.node if n.op_type == "Add"]:
            x = next((a for a in add3.input if self._scalar(self._operand(add3, a)) == 3.0), None)
            if x is None or x in self.const:
                continue
            clip = self._only_user(users, add3.output[0], "Clip")
            if clip is None or [self._scalar(i) for i in clip.input[1:]] != [0.0, 6.0]:
                continue
            mul = self._only_user(users, clip.output[0], "Mul")
            if mul is None or self._operand(mul, clip.output[0]) != x:
                continue
            div = self._only_user(users, mul.output[0], "Div")
            if div is None or div.input[0] != mul.output[0] or self._scalar(div.input[1]) != 6.0:
                continue
            out, slope, scale_node = div.output[0], 1.0 / 6.0, None
            conv = made.get(x)
            then = self._only_user(users, out, "Mul")
            scale = self._scalar(self._operand(then, out)) if then is not None else None
            own = conv is not None and conv.op_type == "Conv" and conv.input[1] in self.const
            if own and scale and {id(n) for n in users[x]} == {id(add3), id(mul)} and x not in self.outputs:
                weights, bias = self._conv_params(conv)
                self._set_conv(conv, weights * scale, bias * scale)
                slope, scale_node = 1.0 / (6.0 * scale), then
                out = then.output[0]
            hs = helper.make_node("HardSigmoid", [x], [f"{out}_hsig"], alpha=slope, beta=0.5)
            insert[id(add3)] = [hs, helper.make_node("Mul", [x, hs.output[0]], [out])]
            drop.update((id(add3), id(clip), id(mul), id(div)))
            if scale_node is not None:
                drop.add(id(scale_node))
        self._replace(drop, renames, insert)
        return len(insert)

    def _shift_into_next_conv(self) -> int:
        users = self._consumers()
        drop: set[int] = set()
        renames: dict[str, str] = {}
        for add in [n for n in self.graph.node if n.op_type == "Add"]:
            x = next((a for a in add.input if self._scalar(self._operand(add, a)) is not None), None)
            if x is None or x in self.const or add.output[0] in self.outputs:
                continue
            shift = self._scalar(self._operand(add, x))
            convs = users.get(add.output[0], [])
            if not convs or not all(self._unpadded_conv(c, add.output[0]) for c in convs):
                continue
            for conv in convs:
                weights, bias = self._conv_params(conv)
                self._set_conv(conv, None, bias + shift * weights.sum(axis=(1, 2, 3)))
            renames[add.output[0]] = x
            drop.add(id(add))
        self._replace(drop, renames)
        return len(drop)

    def _unpadded_conv(self, node: Any, name: str) -> bool:
        """A convolution reading `name` as its data, with no padding: a constant added to its input adds
        the constant times its weights' sum to every output, exactly."""
        from onnx import helper

        if node.op_type != "Conv" or node.input[0] != name or node.input[1] not in self.const:
            return False
        if len(node.input) > 2 and node.input[2] and node.input[2] not in self.const:
            return False
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        auto = attrs.get("auto_pad", b"NOTSET")
        return auto in (b"NOTSET", b"VALID") and not any(attrs.get("pads", []))
