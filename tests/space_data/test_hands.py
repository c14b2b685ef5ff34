"""Hand detection on real photos: hands where there are hands, none on plain portraits; hands at
the face and away from it; and the `hands` rule end to end on real hands at and away from real
talking faces (`space_data.testing.hand_clips`)."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import skimage.data

from space_data.clip import Clip
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.face import FaceDetector
from space_data.filters import FilterConfig, filter_clip
from space_data.hands import HandDetector, HandSampler, face_box, face_gap, hand_view
from space_data.testing.faces import HAND_IMAGES, PORTRAITS, read_rgb
from space_data.testing.hand_clips import composite_clips, still_clip


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
        # no face box given: the whole picture is the face, the hand is at it
        assert sampler.at_face == [False, False, True, True]
        assert list(sampler.codes()) == [0, 0, 2, 2]
        assert sampler.longest_span() == pytest.approx(10 / 30)
    with pytest.raises(ValueError, match="idle_every"):
        HandSampler(hands, every=10, idle_every=5)


def test_face_gap_face_box_and_hand_view():
    face = np.array([100.0, 100.0, 200.0, 200.0])
    assert face_gap(np.array([150.0, 150.0, 250.0, 250.0]), face) == 0.0  # overlapping
    assert face_gap(np.array([220.0, 120.0, 300.0, 180.0]), face) == pytest.approx(0.2)
    assert face_gap(np.array([0.0, 260.0, 90.0, 300.0]), face) == pytest.approx(0.6)
    lm = np.zeros((68, 3))
    lm[:, 0], lm[:, 1] = np.linspace(10, 50, 68), np.linspace(20, 60, 68)
    np.testing.assert_allclose(face_box(lm), [10, 0, 50, 60])  # raised by half its height
    assert np.isnan(face_box(np.full((68, 3), np.nan))).all()
    assert hand_view((100, 50, 200), (400, 600)) == (0, 0, 400)  # twice the side, inside
    assert hand_view((300, 100, 100), (400, 600)) == (250, 50, 200)
    assert hand_view(None, (224, 300)) == (38, 0, 224)


@pytest.mark.realdata
def test_a_hand_beside_the_face_is_at_it_and_one_far_away_is_not(hands, realdata):
    """The waving photo: its hand is within the margin of the face's box; the same hand with
    the face box moved to the other corner of the picture is not at the face."""
    rgb = read_rgb(realdata / "images" / "hand_waving_beside_face.png")
    detector = FaceDetector()
    b = detector(rgb)[0]
    detector.close()
    face = np.array([b.x0, b.y0, b.x1, b.y1])
    for box, at_face in ((face, True), (np.array([0.0, 250.0, 60.0, 310.0]), False)):
        sampler = HandSampler(hands, every=1, idle_every=1, margin=0.25)
        sampler.run([0], [0.0], rgb[None], box[None])
        assert sampler.flags == [True] and sampler.at_face == [at_face], sampler.gaps


@pytest.fixture(scope="module")
def hand_records(realdata, tmp_path_factory):
    """Records of the designed hand clips (photos as clips; the may clip with hands over the
    face for one second, and with a hand in the lower third), and of the hand-free original."""
    folder = tmp_path_factory.mktemp("hand_clips")
    paths = {
        name: still_clip(realdata, image, folder / f"{name}.mp4", seconds=2.0)
        for name, image in (("cheek", "hand_on_cheek.jpg"), ("waving", HAND_IMAGES[1]))
    }
    paths.update(composite_clips(realdata, "frontal_talking_may_25fps.mp4", folder))
    paths["hand_free"] = realdata / "video" / "frontal_talking_may_25fps.mp4"
    extractor = ClipExtractor(ExtractConfig(require_audio=False))
    try:
        return {
            name: extractor(Clip(clip_id=name, dataset="mead", speaker="s", path=str(path)))
            for name, path in paths.items()
        }
    finally:
        extractor.close()


@pytest.mark.slow
@pytest.mark.realdata
def test_hands_at_the_face_drop_a_clip_hands_away_do_not(hand_records):
    reasons = {}
    for name, rec in hand_records.items():
        assert rec.ok, (name, rec.reason)
        reasons[name] = filter_clip(rec.stats, FilterConfig())
    assert reasons["cheek"][:1] == ["hands"] and reasons["waving"][:1] == ["hands"], reasons
    # the face is hidden (no face found) while the hands cover it: dropped for the hands
    over = hand_records["over_face"].stats
    assert over.frames_no_face > 15 and reasons["over_face"][:1] == ["hands"], reasons
    assert over.hand_span >= 0.5
    for name in ("lower_third", "hand_free"):
        assert "hands" not in reasons[name], (name, reasons[name])
    # the hand in the lower third is seen, away from the face: the record says so (code 1)
    lower = hand_records["lower_third"].arrays["hands"]
    assert (lower == 1).mean() > 0.5 and not (lower == 2).any()
