"""ferlite.images.read_image on real files written here: bad files refused with a clear ImageError, odd formats
decoded right, large JPEGs decoded reduced within the pixel budget; the same files through the Recognizer."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ferlite import recognizer
from ferlite.datasets import DataError, read_csv_dataset, read_ferplus_folder
from ferlite.images import MAX_PIXELS, ImageError, face_to_input, read_image, read_image_with_size
from ferlite.recognizer import Recognizer
from ferlite.training.export import calibration_faces

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")
ASTRONAUT_BOX = (181, 66, 86, 113)  # where YuNet (the default detector) finds the face in the 512x512 photo


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Recognizer:
    """The default pretrained TFLite model with the default detector (both bundled), loaded once."""
    r = Recognizer.from_pretrained()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERLITE_HOME", str(tmp_path_factory.mktemp("home")))
        assert r.detector.name == "yunet"  # loaded now, kept for the module
    yield r
    r.close()


def encode(rgb: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, rgb[..., ::-1] if rgb.ndim == 3 else rgb, list(params))
    assert ok
    return buf.tobytes()


def pillow_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- refused files -----------------------------------------------------------------------------------------------

def test_zero_byte_file(tmp_path):
    p = write(tmp_path / "empty.png", b"")
    with pytest.raises(ImageError, match=r"empty\.png' is not a readable image: the file is empty \(0 bytes\) "
                                         r"\(expected a PNG, JPEG, BMP, TIFF or WebP file\)") as info:
        read_image(p)
    assert info.value.path == str(p) and info.value.problem == "the file is empty (0 bytes)"


@pytest.mark.parametrize(("ext", "fmt", "where"), [
    (".png", "PNG", "inside its 'IDAT' chunk, before its IEND chunk"),
    (".jpg", "JPEG", "before its end-of-image marker \\(FFD9\\)"),
])
def test_truncated_png_and_jpeg(tmp_path, astronaut, ext, fmt, where):
    data = encode(astronaut, ext)
    p = write(tmp_path / f"half{ext}", data[:len(data) // 2])
    for mode in ("rgb", "gray"):
        with pytest.raises(ImageError, match=rf"half\{ext}' is not a readable image: truncated: the {fmt} ends "
                                             rf"after {len(data) // 2} bytes, {where} \(expected a complete {fmt}"):
            read_image(p, mode=mode)
    assert read_image(write(tmp_path / f"whole{ext}", data)).shape == (512, 512, 3)


def test_truncated_progressive_jpeg_with_exif_thumbnail(tmp_path, astronaut):
    """A JPEG whose EXIF holds a whole thumbnail JPEG (with its own FFD9) still counts as truncated when cut."""
    thumb = pillow_bytes(Image.fromarray(astronaut).resize((64, 64)), "JPEG")
    exif = Image.Exif()
    exif[0x010E] = "a photo"  # ImageDescription
    data = pillow_bytes(Image.fromarray(astronaut), "JPEG", progressive=True, exif=exif.tobytes() + thumb)
    assert data.count(b"\xff\xd9") >= 2
    assert read_image(write(tmp_path / "whole.jpg", data)).shape == (512, 512, 3)
    with pytest.raises(ImageError, match="truncated: the JPEG ends"):
        read_image(write(tmp_path / "cut.jpg", data[:int(len(data) * 0.8)]))


def test_jpeg_with_data_after_its_end_is_accepted(tmp_path, astronaut):
    """Motion photos and some cameras append data after the end-of-image marker: the picture is still whole."""
    data = encode(astronaut, ".jpg")
    img = read_image(write(tmp_path / "trailer.jpg", data + b"\x00\x00ftypmp42" + bytes(range(256)) * 4))
    np.testing.assert_array_equal(img, read_image(write(tmp_path / "plain.jpg", data)))


@pytest.mark.parametrize("fmt", ["BMP", "WEBP", "TIFF"])
def test_truncated_other_formats(tmp_path, astronaut, fmt):
    data = pillow_bytes(Image.fromarray(astronaut), fmt)
    p = write(tmp_path / f"half.{fmt.lower()}", data[:len(data) // 2])
    with pytest.raises(ImageError, match=rf"half\.{fmt.lower()}' is not a readable image: "):
        read_image(p)
    assert read_image(write(tmp_path / f"whole.{fmt.lower()}", data)).shape == (512, 512, 3)


def test_text_file_named_png(tmp_path):
    p = write(tmp_path / "notes.png", b"shopping list: eggs, milk\n")
    with pytest.raises(ImageError, match=r"notes\.png' is not a readable image: it is not an image: it starts with "
                                         r"b'shopping list: eggs, mil', the start of no image format"):
        read_image(p)


def test_png_signature_then_junk(tmp_path):
    p = write(tmp_path / "fake.png", b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(ImageError, match="a corrupt PNG: its first chunk is 's is' .*not the 13-byte IHDR"):
        read_image(p)


def test_missing_file_folder_and_bad_arguments(tmp_path, astronaut):
    with pytest.raises(FileNotFoundError, match=r"image file not found: '.*nope\.png' \(expected a path"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match=r"image file not found: '.*' is a folder \(expected"):
        read_image(tmp_path)
    p = write(tmp_path / "a.png", encode(astronaut, ".png"))
    with pytest.raises(ValueError, match="mode must be one of 'rgb', 'gray', got 'bgr'"):
        read_image(p, mode="bgr")
    with pytest.raises(ValueError, match="max_pixels must be a positive integer, got 0"):
        read_image(p, max_pixels=0)


def test_image_error_pickles(tmp_path):
    """Ray carries exceptions between processes: the attributes survive."""
    with pytest.raises(ImageError) as info:
        read_image(write(tmp_path / "e.jpg", b""))
    again = pickle.loads(pickle.dumps(info.value))
    assert (str(again), again.path, again.problem, again.expected) == \
        (str(info.value), info.value.path, info.value.problem, info.value.expected)


# --- formats that decode -----------------------------------------------------------------------------------------

def test_16_bit_png_scaled_to_8_bits(tmp_path, astronaut):
    rng = np.random.default_rng(0)
    src = (astronaut.astype(np.uint16) * 257 + rng.integers(0, 257, astronaut.shape)).astype(np.uint16)
    p = write(tmp_path / "deep.png", encode(src, ".png"))
    assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # really a 16-bit file
    img = read_image(p)
    assert img.dtype == np.uint8 and img.shape == src.shape
    assert np.abs(img.astype(float) - src / 257).max() <= 1.0
    gray = read_image(p, mode="gray")
    expected = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY) / 257
    assert gray.shape == src.shape[:2] and np.abs(gray - expected).max() <= 1.5


def test_rgba_png_drops_alpha(tmp_path, astronaut):
    alpha = np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))
    p = write(tmp_path / "rgba.png", pillow_bytes(Image.fromarray(np.dstack([astronaut, alpha]), "RGBA"), "PNG"))
    np.testing.assert_array_equal(read_image(p), astronaut)  # the colours as they are, not composited


def test_palette_png(tmp_path, astronaut):
    pal = Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p = write(tmp_path / "palette.png", pillow_bytes(pal, "PNG"))
    np.testing.assert_array_equal(read_image(p), np.asarray(pal.convert("RGB")))
    assert np.abs(read_image(p).astype(int) - astronaut).mean() < 8


def test_cmyk_jpeg(tmp_path, astronaut):
    cmyk = Image.fromarray(astronaut).convert("CMYK")
    p = write(tmp_path / "cmyk.jpg", pillow_bytes(cmyk, "JPEG", quality=95))
    assert Image.open(p).mode == "CMYK"
    img = read_image(p)
    assert img.shape == astronaut.shape and np.abs(img.astype(int) - astronaut).mean() < 4
    gray = read_image(p, mode="gray")
    assert np.abs(gray.astype(int) - cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)).mean() < 4


def test_gray_png(tmp_path, astronaut):
    src = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    p = write(tmp_path / "gray.png", encode(src, ".png"))
    np.testing.assert_array_equal(read_image(p, mode="gray"), src)
    rgb = read_image(p)
    assert rgb.shape == (512, 512, 3) and all((rgb[..., c] == src).all() for c in range(3))


def test_other_formats_decode(tmp_path, astronaut):
    for fmt in ("BMP", "TIFF", "WEBP"):
        img = read_image(write(tmp_path / f"a.{fmt.lower()}", pillow_bytes(Image.fromarray(astronaut), fmt,
                                                                           **({"lossless": True} if fmt == "WEBP"
                                                                              else {}))))
        np.testing.assert_array_equal(img, astronaut, err_msg=fmt)


def test_1x1_image(tmp_path, rec):
    p = write(tmp_path / "dot.png", encode(np.array([[[200, 10, 30]]], np.uint8), ".png"))
    img = read_image(p)
    assert img.shape == (1, 1, 3) and img[0, 0].tolist() == [200, 10, 30]
    assert rec.analyze(p) == []  # MediaPipe takes it, and finds no face
    probs = rec.predict(p)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_path_with_spaces_and_non_ascii(tmp_path, astronaut, rec):
    folder = tmp_path / "my faces ü 表情"
    folder.mkdir()
    p = folder / "ä b.png"
    Image.fromarray(astronaut).save(p)
    np.testing.assert_array_equal(read_image(p), astronaut)
    np.testing.assert_array_equal(read_image(str(p)), astronaut)
    (face,) = rec.analyze(p)
    assert np.allclose(face["box"], ASTRONAUT_BOX, atol=3)
    with pytest.raises(ImageError, match="ä b.jpg' is not a readable image: the file is empty"):
        rec.predict(write(folder / "ä b.jpg", b""))


# --- large images ------------------------------------------------------------------------------------------------

def _patched_size(data: bytes, fmt: str, w: int, h: int) -> bytes:
    """The bytes of a small real PNG or JPEG with the size in its header replaced (a decompression bomb's header)."""
    b = bytearray(data)
    if fmt == "PNG":
        b[16:24] = w.to_bytes(4, "big") + h.to_bytes(4, "big")
    else:
        sof = b.index(b"\xff\xc0")
        b[sof + 5:sof + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(b)


def test_over_the_budget_refused_from_the_header(tmp_path, astronaut):
    png = write(tmp_path / "bomb.png", _patched_size(encode(astronaut, ".png"), "PNG", 12000, 12000))
    with pytest.raises(ImageError, match=r"bomb\.png' is too large: a 12000x12000 PNG \(144\.0 megapixels\) is over "
                                         r"the 40-megapixel budget, and only a JPEG can be decoded at a reduced size "
                                         r"\(expected at most 40 megapixels"):
        read_image(png)
    jpg = write(tmp_path / "bomb.jpg", _patched_size(encode(astronaut, ".jpg"), "JPEG", 65000, 65000))
    with pytest.raises(ImageError, match=r"a 65000x65000 JPEG \(4225\.0 megapixels\) is over the 40-megapixel budget "
                                         r"even decoded at 1/8 of its size \(expected a JPEG of at most 2560 mega"):
        read_image(jpg)
    assert read_image(write(tmp_path / "a.png", encode(astronaut, ".png")), max_pixels=512 * 512).shape[0] == 512
    with pytest.raises(ImageError, match="over the 0.262143-megapixel budget"):
        read_image(tmp_path / "a.png", max_pixels=512 * 512 - 1)


def test_12000px_jpeg_decoded_reduced_in_bounded_memory(tmp_path, astronaut):
    """A 12000x12000 JPEG (144 megapixels, 432 MB as RGB) comes back at 6000x6000, decoded at that size by libjpeg.

    In a fresh process, so that its peak RSS is this read's: it must stay well below the full picture's 432 MB
    (a full decode with OpenCV peaks near 830 MB above the start)."""
    gray = np.tile(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), (24, 24))[:12000, :12000]
    path = tmp_path / "huge.jpg"
    assert cv2.imwrite(str(path), gray, [cv2.IMWRITE_JPEG_QUALITY, 70])
    del gray
    code = textwrap.dedent("""
        import json, re, resource, sys
        from ferlite.images import read_image_with_size
        import cv2, numpy, PIL.Image  # imported before the baseline, as read_image imports them

        def peak_kib():  # VmHWM: this process's own peak (ru_maxrss can carry the parent's across fork + exec)
            try:
                with open("/proc/self/status") as f:
                    return int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1))
            except OSError:
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)

        before = peak_kib()
        img, size = read_image_with_size(sys.argv[1])
        after = peak_kib()
        print(json.dumps({"shape": img.shape, "size": size, "kib": after - before,
                          "corner": img[:64, :64, 0].tolist()}))
    """)
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert tuple(out["shape"]) == (6000, 6000, 3) and tuple(out["size"]) == (12000, 12000)
    assert 6000 * 6000 <= MAX_PIXELS < 12000 * 12000
    full_rgb_kib = 12000 * 12000 * 3 // 1024
    assert out["kib"] < 0.75 * full_rgb_kib, f"peak RSS grew by {out['kib'] // 1024} MB"
    print(f"peak RSS grew by {out['kib'] // 1024} MB")
    half = cv2.resize(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), (256, 256), interpolation=cv2.INTER_AREA)
    assert np.abs(np.array(out["corner"]) - half[:64, :64]).mean() < 6  # the picture, halved


def test_large_jpeg_boxes_in_pixels_of_the_file(tmp_path, astronaut, rec):
    """analyze(path) on a JPEG decoded at 1/2 gives boxes in the file's pixels, as a full decode would."""
    scale = 14  # 7168x7168: 51 megapixels, over the budget: decoded at 3584x3584
    big = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    path = write(tmp_path / "big.jpg", encode(big, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 90))
    del big
    img, size = read_image_with_size(path)
    assert img.shape == (3584, 3584, 3) and size == (7168, 7168)
    (reduced,) = rec.analyze(img)
    (face,) = rec.analyze(path)
    assert face["box"] == pytest.approx([2 * v for v in reduced["box"]], abs=1)
    np.testing.assert_allclose(face["keypoints"], 2 * np.array(reduced["keypoints"]), atol=1e-3)
    assert np.allclose(face["box"], [scale * v for v in ASTRONAUT_BOX], atol=3 * scale)
    assert face["emotions"] == reduced["emotions"]


def test_scale_results_same_size_is_identity():
    results = [{"box": (1, 2, 3, 4), "keypoints": [(1.5, 2.5)], "score": 0.9}]
    assert recognizer.scale_results(results, (10, 20, 3), (20, 10)) is results
    (r,) = recognizer.scale_results(results, (10, 20, 3), (41, 20))
    assert r["box"] == (2, 4, 6, 8) and np.allclose(r["keypoints"], [(3.075, 5.0)])


# --- the same bad files through the Recognizer and the data readers ----------------------------------------------

@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, astronaut) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    png, jpg = encode(astronaut, ".png"), encode(astronaut, ".jpg")
    files = {"empty.png": b"", "half.png": png[:len(png) // 2], "half.jpg": jpg[:len(jpg) // 2],
             "text.png": b"hello\n"}
    return {name: write(folder / name, data) for name, data in files.items()}


@pytest.mark.parametrize("name", ["empty.png", "half.png", "half.jpg", "text.png"])
def test_recognizer_refuses_bad_files(rec, bad_files, name):
    for call in (rec.predict, rec.analyze, lambda p: rec.predict_batch([p])):
        with pytest.raises(ImageError, match=rf"{name}' is not a readable image: .*\(expected"):
            call(bad_files[name])


def test_data_readers_refuse_bad_images(tmp_path, small_valid_folder, astronaut):
    folder = small_valid_folder(5)
    name = (folder / "label.csv").read_text().splitlines()[1].split(",")[0]
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=rf"label\.csv, line 2: image .*{name}: not a readable image: truncated: "
                                        r"the PNG ends after \d+ bytes.*\(expected a complete PNG file\)"):
        read_ferplus_folder(folder, use_cache=False)
    with pytest.warns(UserWarning, match="1 bad row"):
        assert len(read_ferplus_folder(folder, skip_bad=True, use_cache=False)) == 4
    write(tmp_path / "a.png", encode(astronaut, ".png"))
    write(tmp_path / "b.jpg", b"")
    (tmp_path / "set.csv").write_text("image,calm,glad\na.png,1,0\nb.jpg,0,1\n")
    with pytest.raises(DataError, match=r"set\.csv, line 3: image .*b\.jpg: not a readable image: the file is empty "
                                        r"\(0 bytes\)"):
        read_csv_dataset(tmp_path / "set.csv", channels=3)
    with pytest.warns(UserWarning, match="1 bad row"):
        assert read_csv_dataset(tmp_path / "set.csv", channels=3, skip_bad=True).images.shape == (1, 48, 48, 3)
    calib = tmp_path / "calib"
    calib.mkdir()
    write(calib / "zero.png", b"")
    with pytest.raises(ImageError, match=r"calibration image .*zero\.png is not a readable image: the file is empty"):
        calibration_faces(calib, 1)


# --- fuzz: a few hundred random byte strings as files, deterministic (derandomize) --------------------------------

FUZZ_FACE = np.ascontiguousarray(skdata.astronaut()[100:124, 180:212])  # 32x24 RGB
FUZZ_PNG = encode(FUZZ_FACE, ".png")
FUZZ_JPEG = encode(FUZZ_FACE, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 80)
# PNG, JPEG, BMP, WebP, TIFF, GIF, PGM/PPM, JPEG 2000, Sun raster, ICO, PSD, DDS, PCX, QOI, ICNS, Radiance HDR, PFM
SIGNATURES = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"BM", b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"II*\x00", b"MM\x00*", b"GIF89a", b"P5\n", b"P6\n4 4\n255\n", b"\x00\x00\x00\x0cjP  \r\n\x87\n",
    b"\x59\xa6\x6a\x95", b"\x00\x00\x01\x00", b"8BPS", b"DDS |\x00\x00\x00", b"\x0a\x05\x01\x08", b"qoif", b"icns",
    b"#?RADIANCE\n", b"PF\n")


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` after one to six random edits: a bit flipped, a byte set, the end cut, bytes inserted or deleted."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op, i = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"])), draw(st.integers(0, len(buf)))
        if op == "flip" and i < len(buf):
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and i < len(buf):
            buf[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[i:i + draw(st.integers(1, 16))]
    return bytes(buf)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "random.png"


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(data=st.one_of(st.binary(max_size=512), st.builds(bytes.__add__, st.sampled_from(SIGNATURES),
                                                          st.binary(max_size=512)),
                      mutated(FUZZ_PNG), mutated(FUZZ_JPEG)),
       mode=st.sampled_from(["rgb", "gray"]))
def test_fuzz_read_image(fuzz_file, data, mode):
    """Random bytes, bytes behind image signatures and damaged real PNGs and JPEGs: a picture, or an ImageError
    naming the file and what was expected; never another exception."""
    fuzz_file.write_bytes(data)
    try:
        img = read_image(fuzz_file, mode=mode)
    except ImageError as exc:
        assert str(fuzz_file) in str(exc) and exc.path == str(fuzz_file) and "(expected " in str(exc)
        return
    assert img.dtype == np.uint8 and img.size > 0
    assert img.shape[2:] == ((3,) if mode == "rgb" else ())
    if data == FUZZ_PNG:  # edits that changed nothing (a cut at the very end); libpng's gray rounds its own way
        expected = FUZZ_FACE if mode == "rgb" else cv2.cvtColor(FUZZ_FACE, cv2.COLOR_RGB2GRAY)
        assert np.abs(img.astype(int) - expected).max() <= (0 if mode == "rgb" else 1)


def test_face_to_input_resize_rule_and_colour(astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    # shrinking (larger than the side on both sides): area interpolation
    np.testing.assert_array_equal(face_to_input(astronaut, 48, 1),
                                  cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA)[..., None])
    # enlarging, or a side already smaller: bilinear
    small = cv2.resize(gray, (40, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(face_to_input(small, 64, 1)[..., 0],
                                  cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR))
    strip = gray[:30, :100]
    np.testing.assert_array_equal(face_to_input(strip, 48, 1)[..., 0],
                                  cv2.resize(strip, (48, 48), interpolation=cv2.INTER_LINEAR))
    # the model's side already: the very pixels
    np.testing.assert_array_equal(face_to_input(small[..., None], 40, 1)[..., 0], small)
    # colour: gray repeated for a 3-channel model; BGR read as such
    rgb = face_to_input(small, 40, 3)
    assert rgb.shape == (40, 40, 3) and rgb.dtype == np.uint8 and all((rgb[..., c] == small).all() for c in range(3))
    bgr = astronaut[..., ::-1]
    for channels in (1, 3):
        np.testing.assert_array_equal(face_to_input(bgr, 48, channels, color="bgr"),
                                      face_to_input(astronaut, 48, channels))


@pytest.mark.parametrize(("args", "message"), [
    ((np.zeros((8, 8), np.float32), 48, 1), "expected a non-empty uint8 HxW, HxWx1 or HxWx3 face image, got float32"),
    ((np.zeros((8, 8, 4), np.uint8), 48, 1), r"got uint8 \(8, 8, 4\)"),
    ((np.zeros((0, 8), np.uint8), 48, 1), r"got uint8 \(0, 8\)"),
    ((np.zeros((8, 8), np.uint8), 0, 1), "size must be a positive integer .*, got 0"),
    ((np.zeros((8, 8), np.uint8), 48, 2), "channels must be 1 .* or 3 .*, got 2"),
])
def test_face_to_input_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        face_to_input(*args)
    with pytest.raises(ValueError, match="color must be 'rgb' or 'bgr', got 'hsv'"):
        face_to_input(np.zeros((8, 8, 3), np.uint8), 48, 3, color="hsv")


def test_readers_calibration_and_recognizer_use_face_to_input(small_valid_folder, tmp_path, bundled_fp16):
    from ferlite.runtime import load_predictor

    folder = small_valid_folder(6)
    pngs = [folder / line.split(",")[0] for line in (folder / "label.csv").read_text().splitlines()]
    faces = [read_image(p, mode="gray") for p in pngs]
    for size in (32, 64):  # shrunk and enlarged
        expected = np.stack([face_to_input(f, size, 1)[..., 0] for f in faces])
        np.testing.assert_array_equal(read_ferplus_folder(folder, size=size, use_cache=False).images, expected)
        calib, _ = calibration_faces(folder, 6, size=size, channels=3)
        np.testing.assert_array_equal(calib, np.stack([face_to_input(f, size, 3) for f in faces]))
    (tmp_path / "data.csv").write_text("image,calm,glad\n" + "".join(f"{p},1,0\n" for p in pngs))
    np.testing.assert_array_equal(read_csv_dataset(tmp_path / "data.csv", size=64, channels=3).images,
                                  np.stack([face_to_input(read_image(p), 64, 3) for p in pngs]))
    predictor = load_predictor(bundled_fp16)
    big = cv2.resize(faces[0], (100, 100), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(Recognizer(predictor, balance=0).predict_batch([big, faces[1][:40, :40]]).to_numpy(),
                                  predictor.predict(np.stack([face_to_input(big, 48, 1),
                                                              face_to_input(faces[1][:40, :40], 48, 1)])))
