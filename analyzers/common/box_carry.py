"""Work not repeated for a detector: carry a frame's boxes to the next sampled frame by the motion of the
pixels inside them, so the detector can run on every n-th frame only (issue 18).

Corners are picked once on the previous frame (grey, half size), followed by pyramidal Lucas-Kanade, and
each box moves by the median displacement of the corners inside it (its size kept). The move must explain
the pixels: the box's content, shifted by it, must match the new frame clearly better than left in place
(Lucas-Kanade on a repetitive texture can keep a few corners at a wrong, near-zero shift that pass the
forward-backward check). A box with too few followed corners, or whose move does not explain its pixels,
cannot be carried: when it is a counted detection the caller runs the detector instead, a low-confidence
one (kept only for ByteTrack's second stage) is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE = 0.5
"""Motion is estimated on the frame at half size: a 640 px frame's corners at 320 px follow a person
crossing 0.6 of the frame in 2 s (about 20 px between 3 fps samples) well inside LK's pyramid."""
MIN_POINTS = 3
"""Followed corners a box needs inside it for its median motion to be trusted."""
MAX_CORNERS = 150
"""Corners followed per frame (inside the boxes): Lucas-Kanade costs ~12 µs a corner and direction at 320 px."""
MIN_SIDE = 0.01
"""A carried box narrower or lower than this share of the frame has left it."""
STILL_DIFF = 12.0
"""Mean grey-level difference of a box's pixels, moved, under which the move is accepted whatever the box
did in place (a still box, JPEG noise, small deformations of a moving person)."""
EXPLAINED = 0.6
"""Otherwise the moved box must differ from the new frame by at most this share of what the box left in
place differs: on a person walking over a textured street, right moves differ by 0.1-8 levels and a wrong
near-zero move by 65-73, as much as not moving at all (infra/bench/objects_ab.py `walk`)."""


def motion_frame(image: np.ndarray) -> np.ndarray:
    """The grey half-size frame motion is estimated on."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Carried:
    """Boxes carried to the new frame (same rows as given, moved), and whether every box at or above the
    counted confidence could be followed."""

    table: np.ndarray
    complete: bool


def carry_boxes(previous: np.ndarray, current: np.ndarray, table: np.ndarray, counted: float) -> Carried:
    """Move the rows of `table` (cls, conf, normalised x0, y0, x1, y1) from the `previous` motion frame to
    the `current` one; rows under `counted` confidence that cannot be followed are dropped."""
    import cv2

    if len(table) == 0:
        return Carried(table, True)
    h, w = previous.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for row in table:  # corners only where some box is: fewer points to follow
        x0, y0 = int(row[2] * w), int(row[3] * h)
        mask[y0 : int(np.ceil(row[5] * h)) + 1, x0 : int(np.ceil(row[4] * w)) + 1] = 255
    corners = cv2.goodFeaturesToTrack(previous, MAX_CORNERS, 0.01, 5, mask=mask, blockSize=5)
    if corners is None:
        return Carried(table[:0], not bool((table[:, 1] >= counted).any()))
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        previous, current, corners, None, winSize=(15, 15), maxLevel=3
    )
    back, back_status, _ = cv2.calcOpticalFlowPyrLK(
        current, previous, moved, None, winSize=(15, 15), maxLevel=3
    )
    start = corners.reshape(-1, 2)
    good = (
        (status.ravel() == 1)
        & (back_status.ravel() == 1)
        & (np.linalg.norm(back.reshape(-1, 2) - start, axis=1) < 1.0)
    )
    start, shift = start[good], (moved.reshape(-1, 2) - corners.reshape(-1, 2))[good]
    rows, complete = [], True
    for row in table:
        x0, y0, x1, y1 = row[2] * w, row[3] * h, row[4] * w, row[5] * h
        inside = (start[:, 0] >= x0) & (start[:, 0] <= x1) & (start[:, 1] >= y0) & (start[:, 1] <= y1)
        if int(inside.sum()) < MIN_POINTS:
            complete = complete and row[1] < counted
            continue
        dx, dy = np.median(shift[inside], axis=0)
        if not explained(previous, current, (x0, y0, x1, y1), (dx, dy)):
            complete = complete and row[1] < counted
            continue
        box = np.clip([(x0 + dx) / w, (y0 + dy) / h, (x1 + dx) / w, (y1 + dy) / h], 0.0, 1.0)
        if box[2] - box[0] < MIN_SIDE or box[3] - box[1] < MIN_SIDE:  # carried off the frame
            complete = complete and row[1] < counted
            continue
        rows.append([row[0], row[1], *box])
    return Carried(np.array(rows, dtype=np.float64).reshape(-1, 6), complete)


def explained(
    previous: np.ndarray,
    current: np.ndarray,
    box: tuple[float, float, float, float],
    move: tuple[float, float],
) -> bool:
    """Whether moving the box's pixels by `move` (pixels of the motion frame) matches the current frame: the
    moved box differs from it by at most `STILL_DIFF` grey levels on average, or by at most `EXPLAINED` of
    what the box left in place differs. The part of the box that stays inside the frame at both places is
    compared; a box with too little of it is accepted (nothing to tell by)."""
    h, w = previous.shape[:2]
    dx, dy = round(float(move[0])), round(float(move[1]))
    x0 = max(0, int(box[0]), -dx)
    y0 = max(0, int(box[1]), -dy)
    x1 = min(w, int(np.ceil(box[2])), w - dx)
    y1 = min(h, int(np.ceil(box[3])), h - dy)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return True
    before = previous[y0:y1, x0:x1].astype(np.float32)
    moved = float(np.abs(current[y0 + dy : y1 + dy, x0 + dx : x1 + dx] - before).mean())
    if moved <= STILL_DIFF:
        return True
    still = float(np.abs(current[y0:y1, x0:x1] - before).mean())
    return moved <= EXPLAINED * still
