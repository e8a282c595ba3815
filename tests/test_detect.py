"""Face detection and crop geometry on real photos: scikit-image's astronaut(), the real BlazeFace file."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
import warnings

import cv2
import numpy as np
import pytest
from conftest import closed_port_url

from ferlite import detect, weights
from ferlite.detect import CropGeometry, Face, FaceDetector, FaceDetectorOptions, crop_face, detect_faces, eye_angle
from ferlite.video import box_iou

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")

ASTRONAUT_BOX = (177, 82, 95, 95)  # MediaPipe's box on astronaut(), from ../shared/README.md


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


def three_faces(astronaut: np.ndarray) -> np.ndarray:
    """A 640x480 scene: the astronaut's head pasted at scales 1.0, 1.2 and 1.5 onto a blurred copy of the photo."""
    head = astronaut[40:240, 140:310]
    scene = cv2.GaussianBlur(cv2.resize(astronaut, (640, 480)), (0, 0), 15)
    for scale, x, y in ((1.0, 10, 10), (1.2, 190, 200), (1.5, 380, 20)):
        h = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        scene[y:y + h.shape[0], x:x + h.shape[1]] = h
    return scene


@pytest.fixture
def offline(monkeypatch) -> None:
    """No detector file in the (empty) cache and a download mirror that is down; the fallback warning re-armed."""
    monkeypatch.setenv("FERLITE_BASE_URL", closed_port_url())
    monkeypatch.setattr(detect, "_warned_fallback", False)


def test_astronaut_one_face(detector_in_cache, astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert np.allclose(f.box, ASTRONAUT_BOX, atol=3), f.box
    assert all(isinstance(v, int) for v in f.box)
    assert f.score == pytest.approx(0.92, abs=0.03)
    assert len(f.keypoints) == len(detect.KEYPOINT_NAMES) == 6
    (rx, ry), (lx, ly) = f.keypoints[:2]
    x, y, w, h = f.box
    assert x < rx < lx < x + w and y < ry < y + h / 2 and y < ly < y + h / 2  # eyes in the upper half
    assert abs(eye_angle(f)) < 10


def test_bgr_input_and_margin(detector_in_cache, astronaut):
    with FaceDetector(FaceDetectorOptions(margin=0.1)) as det:
        (f,) = det.detect(np.ascontiguousarray(astronaut[..., ::-1]), color="bgr")
        (g,) = det.detect(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    assert np.allclose(f.box, (177 - 9.5, 82 - 9.5, 114, 114), atol=4), f.box
    assert box_iou(f.box, g.box) > 0.8


def test_three_faces_at_different_scales(detector_in_cache, astronaut):
    faces = detect_faces(three_faces(astronaut))
    assert len(faces) == 3
    sides = [f.box[2] for f in faces]
    assert sides == sorted(sides, reverse=True)  # largest first
    assert sides[0] > 1.3 * sides[2]


@pytest.mark.parametrize("detector", ["mediapipe", "haar"])
def test_blank_and_noise_give_no_faces(detector_in_cache, detector):
    rng = np.random.default_rng(0)
    with FaceDetector(detector=detector) as det:
        assert det.name == detector
        for img in (np.zeros((480, 640, 3), np.uint8), np.full((240, 320), 255, np.uint8),
                    rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
                    cv2.GaussianBlur(rng.integers(0, 256, (480, 640), dtype=np.uint8), (0, 0), 2)):
            assert det.detect(img) == []


def test_haar_finds_the_astronaut(astronaut):
    faces = detect_faces(astronaut, detector="haar")
    assert len(faces) == 1
    assert faces[0].keypoints == () and faces[0].score == 1.0
    assert box_iou(faces[0].box, ASTRONAUT_BOX) > 0.5


def cache_files(ferlite_home) -> list[str]:
    return sorted(str(p.relative_to(ferlite_home)) for p in ferlite_home.rglob("*") if p.is_file())


def test_offline_empty_cache_auto_uses_the_bundled_blazeface(offline, ferlite_home, astronaut):
    """Out of the box: no cache, no network, and still MediaPipe (the BlazeFace file inside the package), no Haar."""
    bundled = weights.registry_entry("blaze-face-short-range").bundled_path
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning, nor any other
        with FaceDetector() as det:
            assert det.name == "mediapipe"
            (face,) = det.detect(astronaut)
        assert weights.fetch("blaze-face-short-range") == bundled
        with FaceDetector(detector="mediapipe") as det:
            assert len(det.detect(astronaut)) == 1
    assert np.allclose(face.box, ASTRONAUT_BOX, atol=3) and len(face.keypoints) == 6
    assert cache_files(ferlite_home) == []  # nothing was downloaded, nor tried into the cache


def test_auto_falls_back_to_haar_only_when_mediapipe_cannot_load(tmp_path, monkeypatch, astronaut):
    """A model_path MediaPipe cannot load: auto warns once, naming the file and the reason, and uses Haar;
    detector="mediapipe" refuses it with an error naming the file and what was expected."""
    monkeypatch.setattr(detect, "_warned_fallback", False)
    notes = tmp_path / "notes.tflite"
    notes.write_text("not a model\n")
    expression_model = weights.registry_entry("ferplus-mfn-1.0-fp16").bundled_path  # a TFLite model, no detector
    reason = r"MediaPipe cannot load the face detector model '.*{}': .*\(expected a MediaPipe Tasks face detector"
    with pytest.warns(RuntimeWarning) as record:
        det = FaceDetector(model_path=str(notes))
    assert len(record) == 1 and re.search("falling back to OpenCV's Haar cascade: " + reason.format("notes.tflite")
                                          + ".*blaze_face_short_range.tflite", str(record[0].message))
    assert det.name == "haar" and box_iou(det.detect(astronaut)[0].box, ASTRONAUT_BOX) > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FaceDetector(model_path=str(notes)).name == "haar"  # one warning per process
    for bad, what in ((notes, "not a valid Flatbuffer"), (expression_model, "input tensor")):
        with pytest.raises(ValueError, match=reason.format(re.escape(bad.name))) as err:
            FaceDetector(detector="mediapipe", model_path=str(bad))
        assert repr(str(bad)) in str(err.value) and what in str(err.value)
    with pytest.raises(FileNotFoundError, match="model_path '.*missing.tflite' is not a file"):
        FaceDetector(model_path=str(tmp_path / "missing.tflite"))  # auto too: a named file must exist


def test_explicit_model_path_wins_over_cache_and_package(tmp_path, offline, ferlite_home, astronaut):
    """model_path is used as given: the registry is not consulted (a damaged cached copy is neither read nor noted)."""
    cached = ferlite_home / "weights" / "blaze_face_short_range.tflite"
    cached.parent.mkdir()
    cached.write_bytes(b"damaged")
    mine = tmp_path / "my detector.tflite"
    mine.write_bytes(weights.registry_entry("blaze-face-short-range").bundled_path.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FaceDetector(detector="mediapipe", model_path=str(mine)) as det:
            assert len(det.detect(astronaut)) == 1
    assert cached.read_bytes() == b"damaged"


def test_detector_downloaded_from_loopback_server_when_the_package_lacks_it(monkeypatch, tmp_path, ferlite_home,
                                                                          astronaut):
    """The last resort: a package without the file (pretrained/ emptied) downloads it from the mirror."""
    from conftest import DETECTOR_FILE

    if not DETECTOR_FILE.is_file():
        pytest.skip(f"../shared detector model is absent (looked for {DETECTOR_FILE})")
    monkeypatch.setattr(weights, "PRETRAINED_DIR", tmp_path / "pretrained")  # a package without the bundled file
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DETECTOR_FILE.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("FERLITE_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/")
        with FaceDetector(detector="mediapipe") as det:
            assert len(det.detect(astronaut)) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert (ferlite_home / "weights" / DETECTOR_FILE.name).read_bytes() == DETECTOR_FILE.read_bytes()


def test_package_without_the_file_offline_falls_back_to_haar(offline, monkeypatch, tmp_path, astronaut):
    """No bundled file, nothing cached and no network: only then does auto fall back to Haar (one warning)."""
    monkeypatch.setattr(weights, "PRETRAINED_DIR", tmp_path / "pretrained")
    with pytest.warns(RuntimeWarning, match="falling back to OpenCV's Haar cascade.*blaze_face_short_range.tflite.*"
                                            "could not be downloaded"):
        det = FaceDetector()
    assert det.name == "haar" and len(det.detect(astronaut)) == 1
    with pytest.raises(OSError, match="blaze_face_short_range.tflite"):
        FaceDetector(detector="mediapipe")


def test_options_and_closed_detector_errors(astronaut):
    with pytest.raises(ValueError, match="unknown detector 'dlib'.*auto, mediapipe, haar"):
        detect_faces(astronaut, detector="dlib")
    with pytest.raises(ValueError, match="min_score"):
        FaceDetectorOptions(min_score=1.5)
    with pytest.raises(ValueError, match="margin"):
        CropGeometry(margin=5)
    det = FaceDetector(detector="haar")
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(astronaut)


@pytest.mark.parametrize(("image", "error", "match"), [
    ([[0, 1], [2, 3]], TypeError, "numpy uint8 array.*got list"),
    (np.zeros((48, 48), np.float32), ValueError, "uint8.*float32"),
    (np.zeros((48, 48, 4), np.uint8), ValueError, "4 channels.*img\\[..., :3\\]"),
    (np.zeros((0, 48, 3), np.uint8), ValueError, "empty"),
    (np.zeros((2, 48, 48, 3), np.uint8), ValueError, "HxW.*got shape \\(2, 48, 48, 3\\)"),
])
def test_bad_images_are_named(image, error, match):
    with pytest.raises(error, match=match):
        detect_faces(image, detector="haar")


def test_crop_is_an_exact_copy_inside_the_image(astronaut):
    face = Face((100, 120, 60, 40), 1.0)
    crop = crop_face(astronaut, face, CropGeometry(square=True, margin=0.0, offset_y=0.0))
    assert crop.shape == (60, 60, 3) and crop.dtype == np.uint8
    assert np.array_equal(crop, astronaut[110:170, 100:160])  # centred square around a wide box
    tall = crop_face(astronaut, face, CropGeometry(square=False, margin=0.25, offset_y=-0.5))
    assert np.array_equal(tall, astronaut[90:150, 85:175])  # 1.5x the box, centre moved up by half its height


def test_crop_pads_outside_the_image_by_replicating_edges(astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    crop = crop_face(gray, Face((0, 0, 40, 40), 1.0), CropGeometry(margin=0.5, offset_y=0.0))
    assert crop.shape == (80, 80)
    assert np.array_equal(crop[20:, 20:], gray[:60, :60])
    assert np.array_equal(crop[:20, 20:], np.repeat(gray[:1, :60], 20, axis=0))
    assert (crop[:20, :20] == gray[0, 0]).all()


def test_alignment_levels_the_eyes(detector_in_cache, astronaut):
    (upright,) = detect_faces(astronaut)
    x, y, w, h = upright.box
    rot = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), -20, 1.0)  # turn the photo 20 degrees clockwise
    tilted = cv2.warpAffine(astronaut, rot, astronaut.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    (face,) = detect_faces(tilted)
    assert eye_angle(face) == pytest.approx(eye_angle(upright) + 20, abs=6)
    with FaceDetector() as det:  # re-detect inside the crops (a wide margin leaves the detector some context)
        (plain,) = det.detect(crop_face(tilted, face, CropGeometry(margin=0.6, align=False)))
        (aligned,) = det.detect(crop_face(tilted, face, CropGeometry(margin=0.6, align=True)))
    assert abs(eye_angle(plain)) > 12
    assert abs(eye_angle(aligned)) < 5
    below_threshold = CropGeometry(margin=0.0, align=True, align_min_angle=45)  # tilt under 45 deg: not rotated
    unaligned = CropGeometry(margin=0.0, align=False)
    assert np.array_equal(crop_face(tilted, face, below_threshold), crop_face(tilted, face, unaligned))
    assert CropGeometry() == detect.DEFAULT_GEOMETRY["mediapipe"] and CropGeometry().align


def test_detection_never_imports_tensorflow(detector_in_cache):
    code = ("import sys, ferlite, skimage.data; faces = ferlite.detect_faces(skimage.data.astronaut()); "
            "assert len(faces) == 1; import ferlite.recognizer, ferlite.video; "
            "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
