"""experiments/prior_correction.py scores the corrected outputs by the real-photo protocol of ferlite.evaluate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import REPO, load_script

from ferlite.recognizer import Recognizer

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")
probe = load_script(REPO / "experiments" / "prior_correction.py")


def test_photo_outputs_and_scores(tmp_path):
    for label in ("happiness", "neutral", "contempt"):
        (tmp_path / label).mkdir()
    cv2.imwrite(str(tmp_path / "happiness" / "astronaut.png"), skdata.astronaut()[..., ::-1])
    cv2.imwrite(str(tmp_path / "neutral" / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "contempt" / "astronaut.jpg"), skdata.astronaut()[..., ::-1])
    rec = Recognizer.from_pretrained(balance=0)
    out = probe.photo_outputs(rec, tmp_path)
    labels, probs, found = out
    assert dict(zip(labels, found.tolist())) == {"contempt": True, "happiness": True, "neutral": False}
    assert probs[labels.index("neutral")].tolist() == [0.0] * len(rec.classes)
    prior = rec.predictor.class_prior
    m = probe.photo_scores(rec, out, prior, 0.0, min_images=1)
    assert m["classes"] == ("neutral", "happiness")  # contempt left out, as beside the peers
    assert m["recall"] == {"neutral": 0.0, "happiness": 1.0} and m["balanced_accuracy"] == 0.5
    full = probe.photo_scores(rec, out, prior, 1.0, min_images=1)
    assert full["recall"]["neutral"] == 0.0  # a photo without a face stays a miss whatever the decision
