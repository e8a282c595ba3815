"""Request bodies to pictures: content types, the size limit, multipart forms, and decoding held in memory.

An image arrives as the whole request body (``Content-Type: image/...`` or ``application/octet-stream``) or as the
``file`` field of a ``multipart/form-data`` form. The body is read into memory up to the size limit (413 past it,
announced or not) and never touches the disk: multipart forms are parsed in memory (not spooled to temporary files
as form parsers do), and the picture is decoded by :func:`ferlite.images.read_image_with_size`, the library's one
checked decoder, from an anonymous in-memory file (Linux's ``memfd_create``), so a corrupt, truncated or oversized
image gets the library's own message (422).
"""

from __future__ import annotations

import asyncio
import os

import numpy as np

from ferlite.images import ImageError, read_image_with_size

__all__ = ["ACCEPTED_TYPES", "FILE_FIELD", "RequestError", "check_content_type", "decode_image", "read_body",
           "image_from_body"]

ACCEPTED_TYPES = ("image/*", "application/octet-stream", "multipart/form-data")
FILE_FIELD = "file"
_SEND_HINT = ("send the image as the body with its type (curl --data-binary @photo.jpg -H 'Content-Type: "
              "image/jpeg') or as a form field (curl -F file=@photo.jpg)")


class RequestError(Exception):
    """A request the service refuses: ``status`` is the HTTP status; the message says what was received and what
    was expected."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_content_type(content_type: str | None) -> str:
    """The media type of a request's ``Content-Type`` (lower case, without parameters) if it is one of
    :data:`ACCEPTED_TYPES`; :class:`RequestError` 415 naming the type received otherwise."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith("image/") or media in ACCEPTED_TYPES:
        return media
    got = f"Content-Type {media!r}" if media else "no Content-Type"
    raise RequestError(415, f"unsupported media type: got {got}; expected an image (image/jpeg, image/png, ...), "
                           f"application/octet-stream or multipart/form-data: {_SEND_HINT}")


async def read_body(chunks, *, declared: str | None, max_bytes: int, timeout: float) -> bytes:
    """The request body from the async iterator ``chunks``, at most ``max_bytes`` long and complete within
    ``timeout`` seconds.

    Raises:
        RequestError: 413 when ``declared`` (the Content-Length header) or the bytes received pass ``max_bytes``;
            408 when the body is not complete in time (a slow client gives up its connection, nothing else).
    """
    limit = f"the limit is {max_bytes:,} bytes ({max_bytes / 1e6:g} MB)"
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, f"request body too large: Content-Length is {int(declared):,} bytes; {limit}")
    body = bytearray()

    async def gather() -> None:
        async for chunk in chunks:
            body.extend(chunk)
            if len(body) > max_bytes:
                raise RequestError(413, f"request body too large: more than {max_bytes:,} bytes received; {limit}")

    try:
        await asyncio.wait_for(gather(), timeout)
    except asyncio.TimeoutError:  # an alias of TimeoutError from Python 3.11
        raise RequestError(408, f"the request body was not complete after {timeout:g} s ({len(body):,} bytes "
                               "received); expected the whole body within that time") from None
    return bytes(body)


def _form_file(body: bytes, content_type: str) -> bytes:
    """The ``file`` field of a multipart/form-data body, parsed in memory."""
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise RequestError(400, "multipart/form-data without a boundary parameter in its Content-Type; expected "
                               "a form as browsers and curl -F send it")
    parts: list[tuple[bytes, bytearray]] = []
    header: dict[str, bytearray] = {}

    def header_begin() -> None:
        header.update(field=bytearray(), value=bytearray())

    def header_end() -> None:
        if bytes(header["field"]).lower() == b"content-disposition":
            parts[-1] = (bytes(header["value"]), parts[-1][1])

    callbacks = {
        "on_part_begin": lambda: parts.append((b"", bytearray())),
        "on_header_begin": header_begin,
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda data, start, end: parts[-1][1].extend(data[start:end]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(400, f"a malformed multipart/form-data body ({exc}); expected a form as browsers and "
                               "curl -F send it") from None
    names = []
    for disposition, data in parts:
        name = parse_options_header(disposition)[1].get(b"name", b"").decode("latin-1")
        if name == FILE_FIELD:
            return bytes(data)
        names.append(name)
    got = f"fields {', '.join(map(repr, names))}" if names else "no field"
    raise RequestError(422, f"the multipart/form-data body has {got}; expected the image in a field named "
                           f"{FILE_FIELD!r} (curl -F {FILE_FIELD}=@photo.jpg)")


def image_from_body(body: bytes, media_type: str, content_type: str) -> bytes:
    """The image bytes of a request: the body itself, or the ``file`` field of a multipart form."""
    return _form_file(body, content_type) if media_type == "multipart/form-data" else body


def decode_image(data: bytes, *, max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """An uploaded image as :func:`~ferlite.images.read_image_with_size` reads a file: an RGB array and the
    picture's (width, height), decoded from memory.

    Raises:
        RequestError: 422 with the library's message (an empty, truncated, corrupt or oversized image, or not an
            image), naming "the upload" instead of a file.
    """
    fd = os.memfd_create("ferlite-upload", os.MFD_CLOEXEC)
    path = f"/proc/self/fd/{fd}"
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return read_image_with_size(path, max_pixels=max_pixels)
    except ImageError as exc:
        raise RequestError(422, str(exc).replace(repr(path), "the upload", 1)) from None
    finally:
        os.close(fd)
