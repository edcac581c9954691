"""MTCNN's detection for one RGB frame: facenet-pytorch's `detect_face` with its resampling done on an
integral image.

facenet-pytorch shrinks the frame for every pyramid scale and every candidate box (to 24 and 48 px) with
torch's area interpolation, one call per box: a third of its CPU time on a 640 px frame (~240 P-net
candidates on zidane.jpg). The pixels are integers, so every window sum is exact in float32 whatever the
order of the additions; dividing it by the window's height and then its width, as torch's adaptive average
pool does, gives the same float32 values bit for bit (tests/test_faces_mtcnn.py compares with
`detect_face`). All boxes of a stage are resampled in one gather. The rest (P-net box generation, NMS, box
regression, squaring, padding) is facenet-pytorch's own functions, so the faces are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Net = Callable[[Any], Sequence[Any]]
"""A P/R/O-net: float32 NCHW tensor in, its output tensors out."""


def integral(image: np.ndarray) -> np.ndarray:
    """(H+1) x (W+1) x C window-sum table of a uint8 image (cv2.integral): int32 while no sum can overflow
    it, float64 (exact to 2^53) beyond ~8 megapixels."""
    import cv2

    h, w = image.shape[:2]
    return cv2.integral(image, sdepth=cv2.CV_32S if h * w * 255 < 2**31 else cv2.CV_64F)


def _windows(start: np.ndarray, size: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Torch's adaptive-pool windows: for each of n spans (start, size) the `out` window starts and ends
    (n x out), floor(i * size / out) to ceil((i + 1) * size / out)."""
    i = np.arange(out, dtype=np.int64)
    size = size.astype(np.int64)[:, None]
    return start[:, None] + i * size // out, start[:, None] - (-(i + 1) * size // out)


def area_resample(
    table: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray, oh: int, ow: int
) -> np.ndarray:
    """Regions [y0:y1, x0:x1] of the image whose integral `table` is given, each resampled to oh x ow as
    torch's `interpolate(mode="area")` does: n x C x oh x ow float32, equal to torch's bit for bit. Sums
    are exact (integers under 2^24 in float32), then divided by the window's height, then its width."""
    rs, re = _windows(y0.astype(np.int64), y1 - y0, oh)
    cs, ce = _windows(x0.astype(np.int64), x1 - x0, ow)
    stride = table.shape[1]
    flat = table.reshape(-1, table.shape[2])
    bottom, top = (re * stride)[:, :, None], (rs * stride)[:, :, None]
    right, left = ce[:, None, :], cs[:, None, :]

    def at(index: np.ndarray) -> np.ndarray:
        return np.take(flat, index.reshape(-1), axis=0)  # 1-D take: 4x faster than 2-D fancy indexing

    sums = (at(bottom + right) - at(top + right) - at(bottom + left) + at(top + left)).reshape(
        len(rs), oh, ow, table.shape[2]
    )
    kh = (re - rs).astype(np.float32)[:, :, None, None]
    kw = (ce - cs).astype(np.float32)[:, None, :, None]
    return np.ascontiguousarray((sums.astype(np.float32) / kh / kw).transpose(0, 3, 1, 2))


def pyramid_level(table: np.ndarray, h: int, w: int, oh: int, ow: int) -> np.ndarray:
    """The whole frame resampled to oh x ow (1 x C x oh x ow), as `area_resample` does, in two passes over
    rows then columns: the windows are the same for every row and every column."""
    zero = np.zeros(1, dtype=np.int64)
    rs, re = _windows(zero, zero + h, oh)
    cs, ce = _windows(zero, zero + w, ow)
    band = np.take(table, re[0], axis=0) - np.take(table, rs[0], axis=0)
    sums = np.take(band, ce[0], axis=1) - np.take(band, cs[0], axis=1)
    kh = (re[0] - rs[0]).astype(np.float32)[:, None, None]
    kw = (ce[0] - cs[0]).astype(np.float32)[None, :, None]
    return np.ascontiguousarray((sums.astype(np.float32) / kh / kw).transpose(2, 0, 1))[None]


def pyramid_scales(h: int, w: int, min_face: float, factor: float) -> list[float]:
    """The scales of MTCNN's image pyramid: the smallest face maps to P-net's 12 px, down to a 12 px image."""
    m = 12.0 / min_face
    minl = min(h, w) * m
    scales = []
    scale = m
    while minl >= 12:
        scales.append(scale)
        scale *= factor
        minl *= factor
    return scales


def detect(
    image: np.ndarray,
    nets: tuple[Net, Net, Net],
    min_face: float = 20,
    thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    factor: float = 0.709,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n x 5: x0, y0, x1, y1, probability) and landmarks (n x 5 x 2) of the faces in an RGB uint8
    frame, as facenet-pytorch's MTCNN.detect finds them (before its own sorting)."""
    import torch
    from facenet_pytorch.models.utils.detect_face import (
        batched_nms,
        batched_nms_numpy,
        bbreg,
        generateBoundingBox,
        rerec,
    )

    pnet, rnet, onet = nets
    h, w = image.shape[:2]
    table = integral(image)

    boxes_list, picks, offset = [], [], 0
    for scale in pyramid_scales(h, w, min_face, factor):
        level = pyramid_level(table, h, w, int(h * scale + 1), int(w * scale + 1))
        reg, probs = pnet(torch.from_numpy((level - 127.5) * 0.0078125))
        boxes_scale, inds_scale = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        boxes_list.append(boxes_scale)
        picks.append(batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], inds_scale, 0.5) + offset)
        offset += boxes_scale.shape[0]
    if not boxes_list:
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
    boxes = torch.cat(boxes_list, dim=0)[torch.cat(picks, dim=0)]
    image_inds = torch.zeros(len(boxes), dtype=torch.int64)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]

    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = rerec(torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0))

    if len(boxes) > 0:
        crops, kept = _crops(table, boxes, w, h, 24)
        boxes, image_inds = boxes[kept], image_inds[kept]  # type: ignore[index]
        out0, out1 = rnet(torch.from_numpy((crops - 127.5) * 0.0078125))
        score = out1[:, 1]
        ipass = score > thresholds[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds, mv = image_inds[ipass], out0[ipass]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = rerec(bbreg(boxes, mv))

    points = torch.zeros(0, 5, 2)
    if len(boxes) > 0:
        crops, kept = _crops(table, boxes, w, h, 48)
        boxes, image_inds = boxes[kept], image_inds[kept]  # type: ignore[index]
        out0, out1, out2 = onet(torch.from_numpy((crops - 127.5) * 0.0078125))
        score = out2[:, 1]
        ipass = score > thresholds[2]
        points = out1[ipass].permute(1, 0)
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds, mv = image_inds[ipass], out0[ipass]
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, mv)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, points = boxes[pick], points[pick]
    return boxes.numpy(), points.numpy()


def _crops(table: np.ndarray, boxes: Any, w: int, h: int, side: int) -> tuple[np.ndarray, Any]:
    """The boxes' regions clipped to the frame (facenet-pytorch's `pad`), each resampled to side x side,
    and the indices of the boxes kept (a box wholly outside the frame has no region)."""
    import torch
    from facenet_pytorch.models.utils.detect_face import pad

    y, ey, x, ex = pad(boxes, w, h)
    kept = np.flatnonzero((ey > y - 1) & (ex > x - 1))
    y, ey, x, ex = (v[kept].astype(np.int64) for v in (y, ey, x, ex))
    return area_resample(table, y - 1, ey, x - 1, ex, side, side), torch.from_numpy(kept)
