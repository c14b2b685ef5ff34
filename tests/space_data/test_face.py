"""Face detection on real faces, and the per-clip square crop (math checked with hypothesis)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import skimage.data
from hypothesis import given
from hypothesis import strategies as st

from space_data.face import (
    FaceBox,
    FaceDetector,
    crop_and_resize,
    resized_points,
    square_crop_box,
)
from space_data.testing.faces import PORTRAITS, TALKING_VIDEOS, read_rgb, video_frames


@pytest.fixture(scope="module")
def detector():
    detector = FaceDetector()
    yield detector
    detector.close()


def test_astronaut_face_is_found_where_it_is(detector):
    boxes = detector(skimage.data.astronaut())
    assert len(boxes) == 1
    box = boxes[0]
    assert box.score > 0.8
    # Eileen Collins' face in the 512² picture: centre near (225, 130), about 95 px wide.
    assert abs(0.5 * (box.x0 + box.x1) - 225) < 20 and abs(0.5 * (box.y0 + box.y1) - 130) < 20
    assert 60 < box.x1 - box.x0 < 140


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea"])
def test_no_face_in_pictures_without_people(detector, name):
    assert detector(getattr(skimage.data, name)()) == []


@pytest.mark.realdata
@pytest.mark.parametrize("name", PORTRAITS)
def test_one_face_on_each_portrait(detector, realdata, name):
    rgb = read_rgb(realdata / "images" / name)
    height, width = rgb.shape[:2]
    boxes = detector(rgb)
    assert len(boxes) >= 1 and boxes[0].score > 0.8
    box = boxes[0]
    assert 0.1 * width < box.x1 - box.x0 < 0.9 * width
    assert 0 <= 0.5 * (box.x0 + box.x1) <= width and 0 <= 0.5 * (box.y0 + box.y1) <= height


@pytest.mark.realdata
@pytest.mark.parametrize("name", TALKING_VIDEOS)
def test_faces_in_every_sampled_frame_of_the_talking_videos(detector, realdata, name):
    frames = video_frames(realdata / "video" / name, 30)[::10]
    assert all(detector(rgb) for rgb in frames)


def test_detector_pickles_before_and_after_use(detector):
    detector(skimage.data.astronaut())
    for original in (FaceDetector(min_confidence=0.7, full_range=True), detector):
        copy = pickle.loads(pickle.dumps(original))
        assert (copy.min_confidence, copy.full_range) == (
            original.min_confidence,
            original.full_range,
        )
    assert len(copy(skimage.data.astronaut())) == 1
    copy.close()


def test_crop_box_example():
    boxes = [FaceBox(10, 20, 30, 40, 0.9), None, FaceBox(50, 30, 70, 60, 0.9)]
    # union (10, 20)-(70, 60): 60 wide → side 60 * 1.5 = 90, centred at (40, 40), moved inside.
    assert square_crop_box(boxes, 200, 100, margin=0.25) == (0, 0, 90)
    # centred when there is room
    assert square_crop_box([FaceBox(90, 40, 110, 60, 1.0)], 200, 100, margin=0.5) == (80, 30, 40)
    # too large for the frame: shrinks to the shorter side
    assert square_crop_box([FaceBox(20, 10, 180, 90, 1.0)], 200, 100, margin=0.1) == (50, 0, 100)
    # no face at all: largest centred square
    assert square_crop_box([None, None], 200, 100, margin=0.1) == (50, 0, 100)


def test_crop_box_rejects_bad_arguments():
    with pytest.raises(ValueError, match="margin"):
        square_crop_box([], 10, 10, margin=-0.1)
    with pytest.raises(ValueError, match="frame size"):
        square_crop_box([], 0, 10, margin=0.1)


@st.composite
def clips(draw):
    width = draw(st.integers(16, 2000))
    height = draw(st.integers(16, 2000))
    boxes = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()) and boxes:
            boxes.append(None)
            continue
        # boxes may reach outside the frame, as MediaPipe's do at the border
        x0 = draw(st.floats(-0.2 * width, 0.95 * width))
        y0 = draw(st.floats(-0.2 * height, 0.95 * height))
        w = draw(st.floats(1.0, 0.8 * width))
        h = draw(st.floats(1.0, 0.8 * height))
        boxes.append(FaceBox(x0, y0, x0 + w, y0 + h, 0.9))
    return boxes, width, height, draw(st.floats(0.0, 1.0))


@given(clips())
def test_crop_box_is_square_inside_and_covers_the_faces(clip):
    boxes, width, height, margin = clip
    x0, y0, side = square_crop_box(boxes, width, height, margin)
    assert all(isinstance(v, int) for v in (x0, y0, side))
    assert 1 <= side <= min(width, height)
    assert 0 <= x0 <= width - side and 0 <= y0 <= height - side
    present = [b for b in boxes if b is not None]
    ux0 = np.clip(min(b.x0 for b in present), 0, width)
    uy0 = np.clip(min(b.y0 for b in present), 0, height)
    ux1 = np.clip(max(b.x1 for b in present), 0, width)
    uy1 = np.clip(max(b.y1 for b in present), 0, height)
    wanted = max(ux1 - ux0, uy1 - uy0) * (1 + 2 * margin)
    if wanted <= min(width, height):
        # the whole union fits: the square is the wanted size (rounded up) and covers it
        assert side == max(1, math.ceil(wanted - 1e-9))
        tol = 0.5 + 1e-6  # the start is rounded to a whole pixel
        assert x0 <= ux0 + tol and x0 + side >= ux1 - tol
        assert y0 <= uy0 + tol and y0 + side >= uy1 - tol
        # centred on the union unless the frame border pushed it
        if side / 2 <= (ux0 + ux1) / 2 <= width - side / 2:
            assert abs(x0 + side / 2 - (ux0 + ux1) / 2) <= 0.5 + 1e-6
    else:
        assert side == min(width, height)


def test_crop_and_resize():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)
    same = crop_and_resize(rgb, (30, 10, 80), None)
    assert same.flags.c_contiguous and np.array_equal(same, rgb[10:90, 30:110])
    assert crop_and_resize(rgb, (30, 10, 80), 512).shape == (512, 512, 3)
    # downscaling averages (INTER_AREA): a 1-px checkerboard halved becomes flat grey
    board = np.zeros((64, 64, 3), np.uint8)
    board[::2, ::2] = board[1::2, 1::2] = 255
    small = crop_and_resize(board, (0, 0, 64), 32)
    assert small.shape == (32, 32, 3) and np.all(np.abs(small.astype(int) - 128) <= 1)
    with pytest.raises(ValueError, match="inside"):
        crop_and_resize(rgb, (150, 0, 80), 64)
    # written into a slot of a batch: the same pixels as a fresh crop, resized or not
    batch = np.zeros((2, 80, 80, 3), np.uint8)
    crop_and_resize(rgb, (30, 10, 80), None, out=batch[0])
    crop_and_resize(rgb, (0, 0, 100), 80, out=batch[1])
    assert np.array_equal(batch[0], same)
    assert np.array_equal(batch[1], crop_and_resize(rgb, (0, 0, 100), 80))
    with pytest.raises(ValueError, match="C-contiguous"):
        crop_and_resize(rgb, (30, 10, 80), 64, out=batch[0])


@pytest.mark.parametrize("side, size", [(80, 512), (150, 512), (700, 512), (64, 64)])
def test_resized_points_follow_the_pixels_of_the_resized_crop(side, size):
    """A dot at a point of the native crop sits at `resized_points` of it in the resized crop
    (the dot's brightness-weighted centre), to a twentieth of a resized pixel."""
    yy, xx = np.mgrid[0:side, 0:side]
    for x, y in [(side * 0.31, side * 0.62), (side * 0.75, side * 0.2)]:
        dot = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (side / 40) ** 2))
        rgb = np.repeat((dot * 255).round().astype(np.uint8)[..., None], 3, axis=2)
        big = crop_and_resize(rgb, (0, 0, side), size)[..., 0].astype(float)
        ys, xs = np.mgrid[0:size, 0:size]
        seen = np.array([(xs * big).sum(), (ys * big).sum()]) / big.sum()
        mapped = resized_points(np.array([[x, y, 10.0]], np.float32), side, size)[0]
        np.testing.assert_allclose(mapped[:2], seen, atol=0.05 * max(1.0, size / side))
        assert mapped[2] == pytest.approx(10.0 * size / side)
    same = np.ones((2, 3), np.float32)
    assert resized_points(same, side, None) is same
