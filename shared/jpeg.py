"""A JPEG's declared size, read from its frame header without decoding a pixel.

A few hundred bytes can declare a 65000 × 65000 picture; decoding it first and checking after costs
seconds and gigabytes (or an exception from inside OpenCV). Everyone who accepts a JPEG from the wire
reads its size here first. (Pillow would tell the same, but is not worth a dependency for 30 lines.)
"""

from __future__ import annotations

import struct

SOI = b"\xff\xd8"
# Start-of-frame markers carry the size: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
_LENGTH = struct.Struct(">H")
_SIZE = struct.Struct(">BHH")  # precision, height, width


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) that a JPEG's frame header declares; ValueError when it has none."""
    if not data.startswith(SOI):
        raise ValueError("not a JPEG: no start-of-image marker")
    pos = len(SOI)
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"not a JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = _LENGTH.unpack_from(data, pos + 2)
        if length < 2:
            raise ValueError(f"not a JPEG: segment at byte {pos} has length {length}")
        if marker in _SOF:
            if pos + 4 + _SIZE.size > len(data):
                break
            _, height, width = _SIZE.unpack_from(data, pos + 4)
            if width == 0 or height == 0:
                raise ValueError(f"the JPEG declares {width}x{height} px")
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise ValueError("not a JPEG: no frame header before the image data")
