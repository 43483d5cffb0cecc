"""A picture in, its number out: the OCR's text boxes joined into candidates, the formats choosing, and
a closer look at higher resolution where the first look finds no number."""

from __future__ import annotations

from cloud.recognition.line_assembly import TextRead, candidates
from cloud.recognition.plate_ocr import PlateReader
from cloud.recognition.plate_rules import PlateReading, PlateRules
from shared.frames import Frame


class NumberReader:
    """The plate reader and the fleet's number rules together."""

    def __init__(self, plates: PlateReader, rules: PlateRules) -> None:
        self.plates = plates
        self.rules = rules

    def read(self, image: Frame, closer: bool = True) -> tuple[PlateReading | None, list[TextRead]]:
        """The number in a BGR picture, if the rules accept one, and the text read on the way (the
        closer look only where the first found no number, and only with `closer`)."""
        first = self.plates.look(image)
        reading = self.rules.interpret(candidates(first.reads))
        if reading is not None or not closer:
            return reading, first.reads
        reads = first.reads + self.plates.look_closer(image, first)
        return self.rules.interpret(candidates(reads)), reads
