"""Reading image files: :func:`read_image`, the one image decoder of ferlite (OpenCV, after checks), and
:func:`face_to_input`, the one conversion of a face image into a model's input.

Every image ferlite reads from a file comes through here: paths given to the recogniser, the demo and
bulk annotation, FER+ folders, CSV datasets and calibration faces. A file is checked before it is
decoded, so that a bad one gives an :class:`ImageError` that names the file, what is wrong with it and
what was expected, never an OpenCV exception nor a silently wrong picture:

* an empty file, or one that starts like no image format;
* a truncated PNG (no ``IEND`` chunk) or JPEG (no end-of-image marker after its last scan): OpenCV 4
  decodes a truncated JPEG into a half-gray picture with nothing but a libjpeg warning;
* an image over the pixel budget, :data:`MAX_PIXELS` (40 megapixels, 120 MB as RGB), judged from its
  header before anything is decoded. A larger JPEG is decoded at 1/2, 1/4 or 1/8 of its size (the least
  reduction that fits; libjpeg scales while it decodes, so memory stays at the reduced size); a JPEG
  over the budget even at 1/8, or a larger image of another format (those decode only whole), is refused.

What comes out: uint8 RGB ``HxWx3`` (``mode="rgb"``; gray files give 3 equal channels) or gray ``HxW``
(``mode="gray"``: OpenCV's luma, 0.299 R + 0.587 G + 0.114 B). 16-bit images are scaled to 8 bits
(value / 256); the alpha channel of RGBA and gray+alpha images is dropped (colours are used as they
are, not composited onto a background); palette images are expanded; CMYK JPEGs are converted to RGB;
the EXIF orientation of a JPEG is applied. Formats: PNG, JPEG, BMP, TIFF and WebP, and any other whose
header Pillow reads and that OpenCV decodes (PPM/PGM, Sun raster, JPEG 2000, GIF with OpenCV 4.11+...).

Every face a model sees outside the ``tf.data`` training pipeline goes through :func:`face_to_input`: faces given
to the recogniser, dataset readers (FER+ folders, CSV datasets, class folders), scoring and int8 calibration.

This module never imports TensorFlow.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "MODES", "ImageError", "face_to_input", "read_image",
           "read_image_with_size"]

MAX_PIXELS = 40_000_000
MODES = ("rgb", "gray")
# file name endings taken for images where a folder is searched (calibration faces, folder-per-class datasets)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
EXPECTED = "a PNG, JPEG, BMP, TIFF or WebP file"
_REDUCTIONS = (1, 2, 4, 8)  # the scales libjpeg decodes at (OpenCV's IMREAD_REDUCED_* flags)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# A JPEG marker: 0xFF then a code that is not a stuffed zero, a restart marker (both occur inside
# entropy-coded data) or a fill byte. Searching for it skips scans, and junk between segments as libjpeg does.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)


class ImageError(ValueError):
    """An image file that cannot be used: the message names the file, what is wrong and what was expected.

    Attributes:
        path: the file.
        problem: what is wrong with it, without the file's name (e.g. ``"the file is empty (0 bytes)"``).
        expected: what was expected instead (e.g. ``"a complete PNG file"``).
    """

    def __init__(self, message: str, *, path: str | os.PathLike = "", problem: str = "",
                 expected: str = EXPECTED) -> None:
        super().__init__(message)
        self.path, self.problem, self.expected = os.fspath(path), problem or message, expected

    def reason(self) -> str:
        """``"<problem> (expected <expected>)"``: the message without the file's name, for one that names it."""
        return f"{self.problem} (expected {self.expected})"


def _refuse(path: Path, problem: str, *, lead: str = "is not a readable image", expected: str = EXPECTED):
    return ImageError(f"{str(path)!r} {lead}: {problem} (expected {expected})", path=path, problem=problem,
                      expected=expected)


def _truncated(path: Path, fmt: str, n: int, where: str) -> ImageError:
    return _refuse(path, f"truncated: the {fmt} ends after {n} bytes, {where}", expected=f"a complete {fmt} file")


def _png_size(path: Path, data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, once every chunk up to IEND is there."""
    n, pos, size = len(data), len(_PNG_SIGNATURE), None
    while True:
        if pos + 8 > n:
            raise _truncated(path, "PNG", n, "before its IEND chunk")
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        name = kind.decode("latin-1")
        if size is None:
            if kind != b"IHDR" or length != 13:
                raise _refuse(path, f"a corrupt PNG: its first chunk is {name!r} of {length} bytes, not the "
                                    "13-byte IHDR")
            if pos + 8 + 13 > n:
                raise _truncated(path, "PNG", n, "inside its IHDR chunk")
            size = int.from_bytes(data[pos + 8:pos + 12], "big"), int.from_bytes(data[pos + 12:pos + 16], "big")
            if min(size) == 0:
                raise _refuse(path, f"a corrupt PNG: its header gives a size of {size[0]}x{size[1]} pixels")
        if kind == b"IEND":
            return size
        if length > 0x7FFFFFFF:
            raise _refuse(path, f"a corrupt PNG: chunk {name!r} at byte {pos} claims {length} bytes")
        if pos + 12 + length > n:
            raise _truncated(path, "PNG", n, f"inside its {name!r} chunk, before its IEND chunk")
        pos += 12 + length


def _jpeg_size(path: Path, data: bytes) -> tuple[int, int]:
    """(width, height) from the frame header, once the segments and scans reach the end-of-image marker."""
    n, pos, size = len(data), 2, None
    while True:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            raise _truncated(path, "JPEG", n, "before its end-of-image marker (FFD9)")
        pos, marker = found.start(), data[found.start() + 1]
        if marker == 0xD9:  # end of image
            break
        if marker in (0x01, 0xD8):  # TEM, SOI: no length field
            pos += 2
            continue
        if pos + 4 > n:
            raise _truncated(path, "JPEG", n, "inside a segment header")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            raise _refuse(path, f"a corrupt JPEG: marker FF{marker:02X} at byte {pos} has a length of {length}")
        if pos + 2 + length > n:
            raise _truncated(path, "JPEG", n, f"inside its FF{marker:02X} segment")
        if marker in _JPEG_SOF:
            if length < 8:
                raise _refuse(path, f"a corrupt JPEG: a frame header of {length} bytes")
            size = int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        elif marker == 0xDA and size is None:
            raise _refuse(path, "a corrupt JPEG: image data (a scan) before any frame header")
        pos += 2 + length  # after a scan's header, the search skips its entropy-coded data
    if size is None or min(size) == 0:
        raise _refuse(path, "a corrupt JPEG: no frame header with a width and a height" if size is None else
                      f"a JPEG whose frame header gives {size[0]}x{size[1]} pixels (a height set later, by a "
                      "DNL marker, is not supported)")
    return size


def _other_header(path: Path, head: bytes, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """Format name and (width, height) of a file that is not PNG or JPEG, from Pillow's header parsing."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning (our budget decides), plugins' header notes
            with Image.open(path) as im:
                return str(im.format), im.size
    except Image.DecompressionBombError as exc:
        raise _refuse(path, str(exc), lead="is too large",
                      expected=f"at most {max_pixels / 1e6:g} megapixels") from None
    except UnidentifiedImageError:
        raise _refuse(path, f"it is not an image: it starts with {head[:24]!r}, the start of no image format "
                            "that OpenCV or Pillow reads") from None
    except Exception as exc:  # Pillow's plugins raise many kinds of exception on a corrupt header
        raise _refuse(path, f"a corrupt image header ({type(exc).__name__}: {exc})") from None


def _check_length(path: Path, head: bytes, n: int) -> None:
    """Refuse a BMP or WebP shorter than the length its header declares."""
    if head.startswith(b"BM"):
        fmt, declared = "BMP", int.from_bytes(head[2:6], "little")
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        fmt, declared = "WebP", int.from_bytes(head[4:8], "little") + 8
    else:
        return
    if declared > n:
        raise _truncated(path, fmt, n, f"short of the {declared} its header declares")


def _reduction(path: Path, fmt: str, size: tuple[int, int], max_pixels: int) -> int:
    """The least of 1, 2, 4, 8 that brings the decoded picture within ``max_pixels`` (only JPEGs reduce)."""
    w, h = size
    for f in _REDUCTIONS if fmt == "JPEG" else (1,):
        if math.ceil(w / f) * math.ceil(h / f) <= max_pixels:
            return f
    budget = f"{max_pixels / 1e6:g}-megapixel budget"
    what = f"a {w}x{h} {fmt} ({w * h / 1e6:.1f} megapixels)"
    if fmt == "JPEG":
        raise _refuse(path, f"{what} is over the {budget} even decoded at 1/8 of its size", lead="is too large",
                      expected=f"a JPEG of at most {64 * max_pixels / 1e6:g} megapixels")
    raise _refuse(path, f"{what} is over the {budget}, and only a JPEG can be decoded at a reduced size",
                  lead="is too large", expected=f"at most {max_pixels / 1e6:g} megapixels: downscale it, save it "
                                                "as JPEG, or decode it yourself and pass the array")


def read_image_with_size(path: str | os.PathLike, *, mode: str = "rgb",
                         max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, tuple[int, int]]:
    """Read an image file as :func:`read_image` does, with the (width, height) of the picture at full size.

    The two sizes differ when a JPEG over ``max_pixels`` was decoded reduced: scale what is found in
    the array by ``width / array.shape[1]`` (and the height likewise) to get pixels of the file.
    """
    import cv2

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    p = Path(path)
    if not p.is_file():
        what = f"{str(p)!r} is a folder" if p.is_dir() else repr(str(p))
        raise FileNotFoundError(f"image file not found: {what} (expected a path to an existing image file)")
    with open(p, "rb") as f:
        head = f.read(32)
    if not head:
        raise _refuse(p, "the file is empty (0 bytes)")
    if head.startswith(_PNG_SIGNATURE) or head.startswith(_JPEG_SIGNATURE):
        data = p.read_bytes()
        fmt = "PNG" if head.startswith(_PNG_SIGNATURE) else "JPEG"
        size = _png_size(p, data) if fmt == "PNG" else _jpeg_size(p, data)
    else:
        _check_length(p, head, p.stat().st_size)
        fmt, size = _other_header(p, head, max_pixels)
        data = p.read_bytes()
    factor = _reduction(p, fmt, size, max_pixels)
    flags = {"rgb": (cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_COLOR_4,
                     cv2.IMREAD_REDUCED_COLOR_8),
             "gray": (cv2.IMREAD_GRAYSCALE, cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_GRAYSCALE_4,
                      cv2.IMREAD_REDUCED_GRAYSCALE_8)}[mode]
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags[_REDUCTIONS.index(factor)])
    except cv2.error:
        img = None
    if img is None:
        raise _refuse(p, f"OpenCV cannot decode this {fmt} file (corrupt data, or a {fmt} variant it does not "
                         "support)")
    if mode == "rgb":
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: a large picture is not held twice
    h, w = img.shape[:2]
    if factor == 1:
        return img, (w, h)
    # the EXIF orientation may have turned the picture a quarter: then the header's sides are swapped
    reduced = (math.ceil(size[0] / factor), math.ceil(size[1] / factor))
    return img, (size if (w, h) == reduced else (size[1], size[0]))


def read_image(path: str | os.PathLike, *, mode: str = "rgb", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as a uint8 RGB ``HxWx3`` array (``mode="gray"``: ``HxW``), checked before decoding.

    A JPEG over ``max_pixels`` pixels comes back reduced (1/2, 1/4 or 1/8 of its size, the least that fits);
    :func:`read_image_with_size` also gives the full size. See the module's description for what is accepted.

    Raises:
        FileNotFoundError: no such file.
        ImageError: (a ``ValueError``) the file is empty, truncated, corrupt, not an image, or too large.
        ValueError: an unknown ``mode``, or a ``max_pixels`` that is not a positive integer.
    """
    return read_image_with_size(path, mode=mode, max_pixels=max_pixels)[0]


def face_to_input(image: np.ndarray, size: int, channels: int, *, color: str = "rgb") -> np.ndarray:
    """A face image as a model's uint8 ``(size, size, channels)`` input.

    Colour first: a colour face becomes gray with OpenCV's luma for a 1-channel model, a gray face is repeated
    to 3 channels for a 3-channel one, and a BGR face (``color="bgr"``, OpenCV frames) is turned to RGB. Then
    the side: a face larger than ``size`` on both sides is shrunk with area interpolation, any other face is
    resized with bilinear interpolation; a face of ``size x size`` is kept as it is.

    Args:
        image: uint8 ``HxW`` gray, ``HxWx1`` or ``HxWx3`` (RGB, or BGR with ``color="bgr"``).
        size: the model's input side in pixels.
        channels: the model's input channels, 1 (gray) or 3 (RGB).
        color: the channel order of a 3-channel ``image``, ``"rgb"`` or ``"bgr"``.

    Raises:
        ValueError: an image that is not uint8 HxW, HxWx1 or HxWx3 and non-empty, a ``size`` below 1,
            ``channels`` other than 1 or 3, or an unknown ``color``.
    """
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)) \
            or image.size == 0:
        raise ValueError(f"expected a non-empty uint8 HxW, HxWx1 or HxWx3 face image, got {image.dtype} "
                         f"{image.shape}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer (the model's input side), got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}")
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if color == "bgr" else cv2.COLOR_RGB2GRAY)
    elif channels == 3:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        elif color == "bgr":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (size, size):
        shrink = min(image.shape[:2]) > size
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image).reshape(size, size, channels)
