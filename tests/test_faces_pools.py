"""MTCNN's stride-2 max pools, swapped for strided elementwise maxima (analyzers/faces.py fast_max_pools),
give torch's values exactly, on even and odd sides, and MTCNN's faces stay the same."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("facenet_pytorch")
pytest.importorskip("ultralytics")  # the photo

from reelscope.analyzers.faces import _axis_max, _Mtcnn, fast_max_pools  # noqa: E402


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize(
    "shape", [(1, 10, 214, 381), (7, 28, 22, 22), (3, 48, 9, 10), (1, 1, 3, 3), (2, 4, 5, 6)]
)
def test_strided_maxima_are_torchs_ceil_mode_pool(kernel: int, shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape)
    want = torch.nn.functional.max_pool2d(x, kernel, 2, ceil_mode=True)
    got = _axis_max(_axis_max(x, kernel, 2), kernel, 3)
    assert got.shape == want.shape and torch.equal(got, want)


def test_mtcnn_finds_the_same_faces_with_the_swapped_pools() -> None:
    from facenet_pytorch import MTCNN

    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    photo = Image.open(Path(spec.submodule_search_locations[0]) / "assets" / "zidane.jpg").convert("RGB")
    image = np.asarray(photo.resize((640, 360)))
    fast = _Mtcnn(1)
    assert fast_max_pools(MTCNN(keep_all=True, device="cpu")) == 6  # P-net 1, R-net 2, O-net 3
    plain = MTCNN(keep_all=True, device="cpu", post_process=False)
    boxes, probs = plain.detect(image)
    faces = fast.detect(image)
    assert len(faces) == len(boxes) >= 2
    assert np.array_equal(np.array([f.box for f in faces]), boxes.astype(np.float64))
    assert [f.conf for f in faces] == [float(p) for p in probs]
