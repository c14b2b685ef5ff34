"""Hand detection on real photos: hands where there are hands, none on plain portraits."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import skimage.data

from space_data.hands import HandDetector, HandSampler
from space_data.testing.faces import HAND_IMAGES, PORTRAITS, read_rgb


@pytest.fixture(scope="module")
def hands():
    detector = HandDetector()
    yield detector
    detector.close()


@pytest.mark.realdata
@pytest.mark.parametrize("name", HAND_IMAGES)
def test_hand_found_beside_or_on_the_face(hands, realdata, name):
    rgb = read_rgb(realdata / "images" / name)
    assert hands(rgb) is True
    assert hands.count(rgb) == 1


@pytest.mark.realdata
@pytest.mark.parametrize("name", PORTRAITS)
def test_no_hand_on_portraits(hands, realdata, name):
    assert hands(read_rgb(realdata / "images" / name)) is False


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_no_hand_on_skimage_pictures(hands, name):
    assert hands(getattr(skimage.data, name)()) is False


def test_hand_detector_pickles_and_validates(hands):
    hands(skimage.data.astronaut())
    copy = pickle.loads(pickle.dumps(hands))
    assert (copy.min_confidence, copy.max_hands, copy.model_complexity) == (0.5, 2, 1)
    assert copy(skimage.data.astronaut()) is False
    copy.close()
    with pytest.raises(ValueError, match="max_hands"):
        HandDetector(max_hands=0)
    with pytest.raises(ValueError, match="model_complexity"):
        HandDetector(model_complexity=2)


@pytest.mark.realdata
def test_sampler_searches_less_often_until_a_hand_shows(hands, realdata):
    """40 frames of a plain portrait, then 40 of a hand on the cheek: samples every 30th frame
    while none is seen, every 10th once one is; the clip's samples restart with `start()`."""
    portrait, hand = (
        cv2.resize(read_rgb(realdata / "images" / name), (256, 256))
        for name in (PORTRAITS[0], HAND_IMAGES[0])
    )
    frames = np.stack([portrait] * 40 + [hand] * 40)
    sampler = HandSampler(hands, every=10, idle_every=30)
    for _ in range(2):
        sampler.start()
        for start in range(0, 80, 16):  # in batches, as the extractor feeds it
            index = range(start, start + 16)
            sampler.run(index, [i / 30 for i in index], frames[start : start + 16])
        assert [round(t * 30) for t in sampler.times] == [0, 30, 60, 70]
        assert sampler.flags == [False, False, True, True]
    with pytest.raises(ValueError, match="idle_every"):
        HandSampler(hands, every=10, idle_every=5)
