"""experiments/detector_coverage.py counts what its table says: photos without a face, with several, per detector."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import REPO, load_script

from ferlite.detect import FaceDetector

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")
coverage_script = load_script(REPO / "experiments" / "detector_coverage.py")


def test_counts_no_face_and_several_faces(tmp_path):
    photo = skdata.astronaut()
    two = np.concatenate([photo[:, :256], photo[:, :256]], axis=1)  # the face twice, side by side
    (tmp_path / "happiness").mkdir()
    (tmp_path / "neutral").mkdir()
    cv2.imwrite(str(tmp_path / "happiness" / "one.png"), photo[..., ::-1])
    cv2.imwrite(str(tmp_path / "happiness" / "two.jpg"), two[..., ::-1])
    cv2.imwrite(str(tmp_path / "neutral" / "blank.png"), np.full((300, 300, 3), 128, np.uint8))
    (tmp_path / "neutral" / ".hidden.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photo")
    files = coverage_script.photos(tmp_path)
    assert [p.name for p in files] == ["one.png", "two.jpg", "blank.png"]
    images = [cv2.imread(str(p))[..., ::-1].copy() for p in files]
    with FaceDetector() as det:
        r = coverage_script.coverage(det, images)
    assert (r["photos"], r["no_face"], r["several"]) == (3, 1, 1) and r["ms"] > 0
