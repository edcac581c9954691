"""MTCNN's detection with the resampling on an integral image (analyzers/common/mtcnn.py): the pyramid
levels and the 24/48 px candidate crops equal torch's area interpolation bit for bit, and the faces equal
facenet-pytorch's own MTCNN.detect on real photos (people, a portrait; whole, halved, mirrored)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("facenet_pytorch")
pytest.importorskip("ultralytics")  # the photos

from reelscope.analyzers.common import mtcnn  # noqa: E402
from reelscope.analyzers.faces import _Mtcnn  # noqa: E402


def photo(name: str, side: int = 640) -> np.ndarray:
    if name == "grace_hopper.jpg":
        folder = Path(pytest.importorskip("matplotlib").get_data_path()) / "sample_data"
    else:
        spec = importlib.util.find_spec("ultralytics")
        assert spec is not None and spec.submodule_search_locations
        folder = Path(spec.submodule_search_locations[0]) / "assets"
    img = Image.open(folder / name).convert("RGB")
    scale = side / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    return np.asarray(img)


def torch_area(image: np.ndarray, y0: int, y1: int, x0: int, x1: int, size: tuple[int, int]) -> np.ndarray:
    """What facenet-pytorch does: the NHWC frame permuted to NCHW, cropped, interpolated in area mode."""
    t = torch.as_tensor(image.copy())[None].permute(0, 3, 1, 2).float()
    return torch.nn.functional.interpolate(t[:, :, y0:y1, x0:x1], size=size, mode="area").numpy()


def test_pyramid_levels_are_torchs_area_interpolation_bit_for_bit() -> None:
    image = photo("zidane.jpg")
    h, w = image.shape[:2]
    table = mtcnn.integral(image)
    scales = mtcnn.pyramid_scales(h, w, 20, 0.709)
    assert len(scales) == 9 and scales[0] == pytest.approx(0.6)
    for scale in scales:
        size = (int(h * scale + 1), int(w * scale + 1))
        assert np.array_equal(mtcnn.pyramid_level(table, h, w, *size), torch_area(image, 0, h, 0, w, size))


@pytest.mark.parametrize("side", [24, 48])
def test_candidate_crops_are_torchs_area_interpolation_bit_for_bit(side: int) -> None:
    """Boxes from 3 px (upsampled) to the whole frame, at the edges and inside, resampled all at once."""
    image = photo("bus.jpg")
    h, w = image.shape[:2]
    rng = np.random.default_rng(7)
    y0 = rng.integers(0, h - 3, 200)
    x0 = rng.integers(0, w - 3, 200)
    y1 = np.minimum(h, y0 + rng.integers(3, 300, 200))
    x1 = np.minimum(w, x0 + rng.integers(3, 300, 200))
    y0[:2], y1[:2], x0[:2], x1[:2] = 0, h, 0, w
    got = mtcnn.area_resample(mtcnn.integral(image), y0, y1, x0, x1, side, side)
    want = np.concatenate(
        [torch_area(image, a, b, c, d, (side, side)) for a, b, c, d in zip(y0, y1, x0, x1, strict=True)]
    )
    assert got.dtype == np.float32 and np.array_equal(got, want)


@pytest.mark.parametrize("name", ["zidane.jpg", "bus.jpg", "grace_hopper.jpg"])
def test_the_faces_are_facenet_pytorchs_own(name: str) -> None:
    """Same faces, same order, same probabilities and landmarks as MTCNN.detect (stock pools, stock
    resampling): P-net sees the same pixels, only in contiguous rather than channels-last memory, whose
    convolution rounds differently in the last bits (boxes agree to 1e-3 px)."""
    from facenet_pytorch import MTCNN

    stock = MTCNN(keep_all=True, device="cpu", post_process=False)
    ours = _Mtcnn(1)
    full = photo(name)
    frames = [full, np.ascontiguousarray(full[:, ::-1]), photo(name, 320)]
    found = 0
    for image in frames:
        boxes, probs, points = stock.detect(image, landmarks=True)
        faces = ours.detect(image)
        if boxes is None:
            assert faces == []
            continue
        assert len(faces) == len(boxes)
        boxes, probs, points = (np.asarray(v, dtype=np.float64) for v in (boxes, probs, points))
        np.testing.assert_allclose([f.box for f in faces], boxes, atol=1e-3)
        np.testing.assert_allclose([f.conf for f in faces], probs, atol=1e-5)
        np.testing.assert_allclose([f.landmarks for f in faces], points, atol=1e-3)
        found += len(faces)
    assert found >= 3  # the comparison saw faces on each photo


def test_a_larger_smallest_face_shrinks_the_pyramid_and_keeps_the_large_faces() -> None:
    """`min_face` 40: the pyramid starts at 12/40 (a quarter of the pixels of 12/20's first level); the two
    faces of zidane.jpg (52 and 67 px at 640 px) are still found, a frame under 40 px is skipped."""
    image = photo("zidane.jpg")
    assert mtcnn.pyramid_scales(*image.shape[:2], 40, 0.709)[0] == pytest.approx(0.3)
    faces = [f for f in _Mtcnn(1, min_face=40).detect(image) if f.conf is not None and f.conf >= 0.9]
    assert sorted(round(f.box[2] - f.box[0]) // 10 for f in faces) == [5, 6]
    assert _Mtcnn(1, min_face=40).detect(image[:39]) == []
