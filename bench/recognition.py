"""Recognition benchmark: series and number on held-out simulator thumbnails, per thumbnail and per
locomotive after voting, numbers on real photographs, and thumbnails per second on this machine.

    python -m bench.recognition [--times 8] [--no-fleet] [--update-card] [--real DIR]
                                [--compare-plate DIR ...]

Thumbnails are cropped by the edge's own ThumbnailMaker from ground-truth extents, on seeds no model
was trained or tuned on, under day, night, blur and heavy occlusion (workers in front), and with
numbers painted as depots paint them: stencilled, in two groups, on a small plate, faded and dirty,
and at night in a lamp's glare. Numbers count
per thumbnail only where the whole painted number lies inside the crop; per locomotive, the votes of
all its thumbnails decide, as in the cloud. The real section (bench/real_numbers.py) reads the photos
of real painted numbers in `--real` (the team's ../shared/real/numbers by default), with the shipped
plate model and each `--compare-plate` model folder (e.g. another precision). Prints a table, writes
bench/results/recognition.json.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import cv2

from bench import prerequisites, real_numbers
from bench.report import NotMeasured, Row, report
from cloud.config import CloudConfig, RecognitionConfig
from cloud.recognition.number_reader import NumberReader
from cloud.recognition.plate_ocr import PlateReader
from cloud.recognition.plate_rules import PlateRules
from cloud.recognition.recogniser import Recogniser
from cloud.recognition.voting import IdentityVotes
from cloud.recognition.worker import build_recogniser
from shared.layout import load_facility
from shared.messages import Thumbnail, ThumbnailMeta, TrackSpan
from sim.scenario import Conditions, Lighting, NumberPaint, Scenario
from sim.world import World
from training.recognition.thumbs import LAYOUT, Thumb, generate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "recognition.json"
PLATE_CARD = REPO / "ir_models" / "plate" / "1.0.0" / "MODEL_CARD.md"
SHIPPED = "run from the repository root, where ir_models/ holds the shipped models"
CONDITIONS: dict[str, tuple[int, Conditions]] = {
    "day": (901, Conditions(lighting=Lighting.DAY)),
    "night": (902, Conditions(lighting=Lighting.NIGHT)),
    "blur": (903, Conditions(blur_sigma_px=(0.8, 1.6), motion_blur_px=(0.0, 4.0))),
    "occlusion": (904, Conditions(workers_per_camera=3.0)),
    # Numbers painted as depots paint them (sim/paint.py), each on seeds of its own.
    "stencil": (905, Conditions(number_paint=NumberPaint.STENCIL)),
    "groups": (906, Conditions(number_paint=NumberPaint.GROUPS)),
    "small plate": (907, Conditions(number_paint=NumberPaint.SMALL_PLATE)),
    "faded": (908, Conditions(number_paint=NumberPaint.FADED)),
    "night glare": (909, Conditions(lighting=Lighting.NIGHT, lamp_glare=True)),
}
CLASSIC_CONDITIONS = ("day", "night", "blur", "occlusion")
PAINT_CONDITIONS = ("stencil", "groups", "small plate", "faded", "night glare")


def fleet_plates() -> list[str]:
    """The numbers of every locomotive the held-out scenarios may bring: what a depot's fleet list holds."""
    facility = load_facility(LAYOUT)
    plates = {
        loco.plate
        for seed, conditions in CONDITIONS.values()
        for loco in World(facility, Scenario(seed=seed, conditions=conditions)).fleet
    }
    return sorted(plates)


def held_out(times: int) -> dict[str, list[Thumb]]:
    """Thumbnails of every held-out condition, at `times` simulation moments 15 minutes apart."""
    facility = load_facility(LAYOUT)
    return {
        name: generate(
            facility,
            Scenario(seed=seed, conditions=conditions),
            [20000.0 + 900.0 * k for k in range(times)],
            f"thumbnails ({name})",
        )
        for name, (seed, conditions) in CONDITIONS.items()
    }


def _thumbnail(thumb: Thumb) -> Thumbnail:
    ok, jpeg = cv2.imencode(".jpg", thumb.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    meta = ThumbnailMeta(
        thumbnail_id=uuid.uuid4(),
        observation_id=uuid.uuid4(),
        node_id="edge-bay1",
        camera_id=thumb.camera_id,
        track_id=thumb.camera_id.split("-")[0],
        captured_at=datetime.now(UTC),
        extent_index=0,
        span=TrackSpan(start_m=thumb.span[0], end_m=thumb.span[1]),
        bbox=(0, 0, thumb.image.shape[1], thumb.image.shape[0]),
    )
    return Thumbnail(meta=meta, jpeg=jpeg.tobytes())


def _share(part: int, whole: int) -> float | None:
    """Part / whole, or None when there was nothing to count (not a share of 0)."""
    return part / whole if whole else None


def measure(recogniser: Recogniser, thumbs: list[Thumb]) -> dict[str, float | None]:
    """Accuracy of one condition's thumbnails, and the time each took end to end (JPEG in); None
    for a figure with nothing to measure it on."""
    series_right = plates_right = plates_total = 0
    votes: dict[str, IdentityVotes] = defaultdict(IdentityVotes)
    readable: dict[str, int] = defaultdict(int)
    seconds = 0.0
    for thumb in thumbs:
        message = _thumbnail(thumb)
        started = time.perf_counter()
        result = recogniser.recognise(message)
        seconds += time.perf_counter() - started
        series_right += result.series == thumb.series
        if thumb.plate_visible:
            plates_total += 1
            plates_right += result.plate == thumb.plate
            readable[thumb.loco_key] += 1
        votes[thumb.loco_key].vote("plate", result.plate, result.plate_confidence)
        votes[thumb.loco_key].vote("series", result.series, result.series_confidence)
    # Voting settles on two confident reads by design, so a locomotive counts once two of its
    # thumbnails showed the whole number (a standing one gets a fresh thumbnail every few minutes).
    readable_locos = [key for key, count in readable.items() if count >= 2]
    locos_right = sum(votes[key].settled("plate")[0] == key for key in readable_locos)
    wrong_settled = sum(1 for key, v in votes.items() if v.settled("plate")[0] not in (None, key))
    return {
        "thumbnails": float(len(thumbs)),
        "series_accuracy": _share(series_right, len(thumbs)),
        "plate_thumbnails": float(plates_total),
        "plate_exact_per_thumbnail": _share(plates_right, plates_total),
        "locos_with_a_readable_plate": float(len(readable_locos)),
        "plate_exact_per_loco": _share(locos_right, len(readable_locos)),
        "locos_settled_on_a_wrong_number": float(wrong_settled),
        "ms_per_thumbnail": 1000.0 * seconds / len(thumbs) if thumbs else None,
    }


def parallel_rate(thumbs: list[Thumb], workers: int, base: CloudConfig) -> float:
    """Thumbnails per second with `workers` recognisers side by side, one inference thread each (as
    `recognition.workers` runs them)."""
    recognition = base.recognition.model_copy(update={"workers": workers, "inference_threads": 1})
    config = base.model_copy(update={"recognition": recognition})
    recognisers = [build_recogniser(config) for _ in range(workers)]
    messages = [_thumbnail(t) for t in thumbs]
    for recogniser in recognisers:
        recogniser.recognise(messages[0])
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda k: [recognisers[k].recognise(m) for m in messages[k::workers]], range(workers)))
    return len(messages) / (time.perf_counter() - started)


def real_rows(folder: Path, plate_dirs: list[Path]) -> tuple[list[Row], dict[str, object]]:
    """The real section: each plate model on every photo of `folder`, one thread."""
    photos = real_numbers.manifest(folder)
    formats = real_numbers.fleet_formats([number for _, number in photos])
    rows: list[Row] = []
    figures: dict[str, object] = {"folder": str(folder), "formats": {k: str(v) for k, v in formats.items()}}
    shipped = PlateReader(plate_dirs[0], threads=1)
    for plate_dir in plate_dirs:
        plates = PlateReader(plate_dir, threads=1)
        reader = NumberReader(plates, PlateRules(formats))
        reads = real_numbers.measure(reader, photos)
        exact = sum(r.exact for r in reads)
        mean_ms = sum(r.ms for r in reads) / len(reads)
        rows.append(
            (
                f"real photos ({folder.name}, {len(reads)}): numbers read exactly, plate model {plate_dir}",
                f"{exact / len(reads):.3f} ({exact}/{len(reads)}; {mean_ms:.0f} ms a photo)",
                "≥ 0.90",
            )
        )
        rows.extend(
            (f"  missed: {r.file}", f"painted {r.number!r}, read {r.read!r}", "")
            for r in reads
            if not r.exact
        )
        figures[str(plate_dir)] = [r.__dict__ | {"exact": r.exact} for r in reads]
        if plate_dir != plate_dirs[0]:
            same, total = real_numbers.crop_agreement(shipped, plates, photos)
            rows.append(
                (
                    f"  real text crops read alike by {plate_dir}'s recogniser and {plate_dirs[0]}'s",
                    f"{same}/{total}",
                    "",
                )
            )
            figures[f"{plate_dir} crops read alike"] = [same, total]
    return rows, figures


def _cell(fmt: str, value: float | None) -> str:
    return "n/a" if value is None else fmt.format(value)


def plate_card(results: dict[str, dict[str, float | None]]) -> str:
    """The model card's table of number accuracy per condition, per thumbnail and per locomotive."""
    rows = [
        "| condition | thumbnails | number exact per thumbnail (whole number in view)"
        " | per locomotive after voting |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {_cell('{:.0f}', r['plate_thumbnails'])} |"
            f" {_cell('{:.3f}', r['plate_exact_per_thumbnail'])} |"
            f" {_cell('{:.3f}', r['plate_exact_per_loco'])}"
            f" ({_cell('{:.0f}', r['locos_with_a_readable_plate'])} locomotives) |"
        )
    return "\n".join(rows)


def main() -> None:
    """Measure recognition under every held-out condition, print the table and write the results
    (and the plate model card's table with `--update-card`)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--times", type=int, default=8, help="Simulation moments per condition, 15 min apart."
    )
    parser.add_argument(
        "--update-card", action="store_true", help="Write the figures into the plate model card."
    )
    parser.add_argument(
        "--fleet",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Give the rules the fleet's numbers.",
    )
    parser.add_argument(
        "--real",
        type=Path,
        default=real_numbers.DEFAULT_FOLDER,
        help="Folder of real photos with manifest.json (default: the team's ../shared/real/numbers).",
    )
    parser.add_argument(
        "--compare-plate",
        type=Path,
        action="append",
        default=[],
        help="Another plate model folder to measure on the real photos (repeatable).",
    )
    args = parser.parse_args()
    models = RecognitionConfig()
    prerequisites.require(
        "bench.recognition",
        [
            prerequisites.ir_model(models.series_model_dir / "series.xml", SHIPPED),
            prerequisites.files("series labels", [models.series_model_dir / "labels.json"], SHIPPED),
            prerequisites.ir_model(models.plate_model_dir / "det.xml", SHIPPED),
            prerequisites.ir_model(models.plate_model_dir / "rec.xml", SHIPPED),
            prerequisites.files("OCR characters", [models.plate_model_dir / "characters.json"], SHIPPED),
            prerequisites.files(
                "real photos of painted numbers",
                [args.real / real_numbers.MANIFEST],
                "the team keeps them in ../shared/real/numbers beside the repository; or pass --real DIR",
            ),
            *(
                prerequisites.ir_model(d / "rec.xml", "pass an existing model folder")
                for d in args.compare_plate
            ),
        ],
    )
    fleet = REPO / "data" / "bench" / "fleet.txt"
    fleet.parent.mkdir(parents=True, exist_ok=True)
    fleet.write_text("\n".join(fleet_plates()) + "\n")
    config = CloudConfig(
        layout=LAYOUT, recognition=RecognitionConfig(fleet_file=fleet if args.fleet else None)
    )
    recogniser = build_recogniser(config)
    sets = held_out(args.times)
    for thumbs in sets.values():  # warm-up: first inferences compile kernels
        if thumbs:
            recogniser.recognise(_thumbnail(thumbs[0]))
    results = {name: measure(recogniser, thumbs) for name, thumbs in sets.items()}
    everything = [t for thumbs in sets.values() for t in thumbs]
    overall = measure(recogniser, everything)
    rows: list[Row] = []
    for key, label, target, fmt in (
        ("series_accuracy", "series accuracy per thumbnail", "≥ 0.97", "{:.3f}"),
        (
            "plate_exact_per_thumbnail",
            "number exact per thumbnail (whole number in view)",
            "≥ 0.95",
            "{:.3f}",
        ),
        (
            "plate_exact_per_loco",
            "number exact per locomotive after voting (2+ readable)",
            "≥ 0.99",
            "{:.3f}",
        ),
        ("locos_settled_on_a_wrong_number", "locomotives settled on a wrong number", "0", "{:.0f}"),
        ("thumbnails", "thumbnails", "", "{:.0f}"),
    ):
        for group in (CLASSIC_CONDITIONS, PAINT_CONDITIONS):
            cells = " / ".join(_cell(fmt, results[name][key]) for name in group)
            empty = [name for name in group if results[name][key] is None]
            value: str | NotMeasured = cells
            if group is PAINT_CONDITIONS:
                value += f"  (all conditions {_cell(fmt, overall[key])})"
            if empty:
                value = NotMeasured(f"nothing to measure it on under {', '.join(empty)} ({value})")
            rows.append((f"{label} ({' / '.join(group)})", value, target))
    ms = overall["ms_per_thumbnail"]
    rate = 1000.0 / ms if ms else float("nan")
    parallel = parallel_rate(everything, 2, config) if everything else float("nan")
    rows.append(
        (
            "thumbnails per second, one recogniser (JPEG → Recognition)",
            f"{rate:.1f}" if ms else NotMeasured("no thumbnail"),
            "",
        )
    )
    rows.append(
        (
            "thumbnails per second, 2 recognisers, 1 thread each (workers: 2)",
            f"{parallel:.1f}" if everything else NotMeasured("no thumbnail"),
            "≥ 50",
        )
    )
    extra_rows, real_figures = real_rows(args.real, [models.plate_model_dir, *args.compare_plate])
    rows += extra_rows
    report(
        "Recognition on held-out simulator thumbnails and real photos, this machine (2 cores)",
        rows,
        RESULTS,
        {
            "real": real_figures,
            "conditions": results,
            "all": overall,
            "thumbnails_per_s": rate,
            "thumbnails_per_s_2_workers": parallel,
        },
    )
    if args.update_card:
        text = PLATE_CARD.read_text()
        start, end = text.index("<!-- metrics -->"), text.index("<!-- /metrics -->")
        real_lines = "\n".join(f"- {label.strip()}: {value}" for label, value, _ in extra_rows)
        table = (
            plate_card(results)
            + f"\n\nReal photos (`--real`, read from outside the repository):\n{real_lines}"
            + f"\n\nSpeed on this machine: {rate:.1f} thumbnails/s with one recogniser, {parallel:.1f}/s with"
            " two (series + OCR + rules)."
        )
        PLATE_CARD.write_text(text[: start + len("<!-- metrics -->")] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    main()
