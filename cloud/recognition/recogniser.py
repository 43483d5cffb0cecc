"""One thumbnail in, one Recognition out: the JPEG checked and decoded, the series classified, the number
read (text boxes joined into candidates, a closer look where the first finds no number) and put
through the plate rules. A thumbnail that cannot be used says why in `rejected`."""

from __future__ import annotations

import cv2
import numpy as np

from cloud.recognition.errors import BadThumbnail
from cloud.recognition.number_reader import NumberReader
from cloud.recognition.plate_ocr import PlateReader
from cloud.recognition.plate_rules import PlateRules
from cloud.recognition.series import SeriesClassifier
from shared.frames import Frame
from shared.jpeg import jpeg_size
from shared.messages import MAX_THUMBNAIL_BYTES, MAX_THUMBNAIL_SIDE_PX, ModelRef, Recognition, Thumbnail

JPEG_SOI = b"\xff\xd8\xff"
MIN_SIDE_PX = 32
MAX_SIDE_PX = MAX_THUMBNAIL_SIDE_PX


def decode_jpeg(data: bytes) -> Frame:
    """The picture in a JPEG; raises BadThumbnail saying what is wrong with it. The size the header
    declares is checked before decoding: a few hundred bytes can declare gigapixels."""
    if not data:
        raise BadThumbnail("empty: zero bytes")
    if len(data) > MAX_THUMBNAIL_BYTES:
        raise BadThumbnail(f"too large: {len(data)} bytes, the limit is {MAX_THUMBNAIL_BYTES}")
    if not data.startswith(JPEG_SOI):
        raise BadThumbnail("not a JPEG: no start-of-image marker")
    try:
        w, h = jpeg_size(data)
    except ValueError as exc:
        raise BadThumbnail(str(exc)) from exc
    if min(h, w) < MIN_SIDE_PX or max(h, w) > MAX_SIDE_PX:
        raise BadThumbnail(f"{w}x{h} px is outside {MIN_SIDE_PX}..{MAX_SIDE_PX} px")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise BadThumbnail(f"not a decodable JPEG: {exc.msg}") from exc
    if image is None or image.shape[:2] != (h, w):
        raise BadThumbnail("not a decodable JPEG")
    return np.asarray(image, np.uint8)


class Recogniser:
    """Series classifier, plate reader and plate rules together."""

    def __init__(self, series: SeriesClassifier, plates: PlateReader, rules: PlateRules) -> None:
        self.series = series
        self.numbers = NumberReader(plates, rules)
        self.models = [_ref(series.model), _ref(plates.model)]

    def recognise(self, thumbnail: Thumbnail) -> Recognition:
        """What the thumbnail shows; `rejected` tells why nothing could be read."""
        meta = thumbnail.meta
        base = {
            "thumbnail_id": meta.thumbnail_id,
            "node_id": meta.node_id,
            "camera_id": meta.camera_id,
            "track_id": meta.track_id,
            "flow": meta.flow,
            "captured_at": meta.captured_at,
            "span": meta.span,
            "models": self.models,
        }
        try:
            image = decode_jpeg(thumbnail.jpeg)
        except BadThumbnail as exc:
            return Recognition(**base, series_confidence=0.0, plate_confidence=0.0, rejected=str(exc))
        guess = self.series.classify(image)
        reading, reads = self.numbers.read(image)
        rejected = ""
        if guess.series is None and reading is None:
            rejected = "no locomotive recognised: series below the threshold and no plate read"
        return Recognition(
            **base,
            series=guess.series,
            series_confidence=round(guess.confidence, 4),
            plate=reading.plate if reading else None,
            plate_confidence=round(reading.confidence, 4) if reading else 0.0,
            plate_raw=(reading.raw if reading else (reads[0].text if reads else ""))[:64],
            rejected=rejected,
        )


def _ref(model: str) -> ModelRef:
    name, _, version = model.partition(":")
    return ModelRef(name=name, version=version or "unknown")
