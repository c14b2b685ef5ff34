"""Hand detection on real photos: hands where there are hands, none on plain portraits."""

from __future__ import annotations

import pickle

import pytest
import skimage.data

from space_data.hands import HandDetector
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
