"""experiments/real_photo_crops.py predicts the geometry it says, and its flip average is the mirror image's mean."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import REPO, load_script

from ferlite.detect import DEFAULT_GEOMETRY
from ferlite.recognizer import Recognizer

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")
probe = load_script(REPO / "experiments" / "real_photo_crops.py")


def test_outputs_match_analyze_and_flip_averages_the_mirror(tmp_path):
    (tmp_path / "happiness").mkdir()
    (tmp_path / "neutral").mkdir()
    cv2.imwrite(str(tmp_path / "happiness" / "astronaut.png"), skdata.astronaut()[..., ::-1])
    cv2.imwrite(str(tmp_path / "neutral" / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    rec = Recognizer.from_pretrained()
    photos = probe.detect_set(rec, tmp_path)
    photos = sorted(photos, key=lambda p: p[0] != "happiness")  # the astronaut first
    assert [(label, face is not None) for label, _, face in photos] == [("happiness", True), ("neutral", False)]
    geometry = DEFAULT_GEOMETRY["yunet"]
    probs, found = probe.outputs(rec, photos, geometry, flip=False)
    assert found.tolist() == [True, False] and probs[1].tolist() == [0.0] * len(rec.classes)
    (face,) = rec.analyze(skdata.astronaut())
    np.testing.assert_allclose(probs[0], list(face["emotions"].values()), atol=1e-6)  # what analyze gives
    flipped, _ = probe.outputs(rec, photos, geometry, flip=True)
    mirror = rec.predict(np.ascontiguousarray(rec._prepare(
        probe.crop_face(photos[0][1], photos[0][2], geometry), "rgb")[:, ::-1]))
    np.testing.assert_allclose(flipped[0], (probs[0] + np.array(list(mirror.values()))) / 2, atol=1e-6)
