"""Train the locomotive series classifier from simulator thumbnails and export it as OpenVINO IR.

    python -m training.recognition.series_train            # → ir_models/loco_model/1.0.0

Renders labelled thumbnails with the edge's own ThumbnailMaker (`training/recognition/thumbs.py`) for
training seeds 1-8 and the held-out seeds 901-902 (cached under data/recognition/series/, so reruns
only train), trains a small CNN on the CPU, exports FP32 IR with the scaling inside, then measures the
IR through the runtime class (`cloud/recognition/series.py`) and writes labels.json, metrics.json and
MODEL_CARD.md beside it. Seeds 900-999 are reserved for evaluation and never trained on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from rich.progress import Progress
from torch import nn

from cloud.recognition.series import LABELS_JSON, MODEL_XML, SeriesClassifier, letterbox
from shared.layout import load_facility
from sim.fleet import SERIES
from sim.scenario import Conditions, Lighting, Scenario
from training.recognition.thumbs import DATA_DIR, LAYOUT, generate

log = logging.getLogger("training.recognition.series")

REPO = Path(__file__).resolve().parents[2]
NAME = "loco_model"
VERSION = "1.0.0"
INPUT_HEIGHT, INPUT_WIDTH = 128, 192
CLASSES = tuple(SERIES)
HORIZON_H = 72.0
CHUNK_TIMES = 6
RESERVED_SEEDS = range(900, 1000)


@dataclass(frozen=True)
class Split:
    """One rendered set: a seed under some conditions, sampled at `times` simulation instants."""

    name: str
    seed: int
    conditions: Conditions
    times: int


# Training: clock-driven day and night (times span three days), forced night, heavier blur and workers.
_AUTO = Conditions(
    noise_sigma=(1.0, 6.0), blur_sigma_px=(0.0, 1.5), motion_blur_px=(0.0, 5.0), workers_per_camera=0.8
)
_NIGHT = Conditions(
    lighting=Lighting.NIGHT, noise_sigma=(2.0, 8.0), blur_sigma_px=(0.0, 1.5), workers_per_camera=0.8
)
_BLUR = Conditions(
    noise_sigma=(1.0, 6.0), blur_sigma_px=(0.5, 2.0), motion_blur_px=(1.0, 6.0), workers_per_camera=1.5
)
TRAIN_SPLITS = [Split("auto", s, _AUTO, 24) for s in (1, 2, 3, 4)]
TRAIN_SPLITS += [Split("night", s, _NIGHT, 24) for s in (5, 6)]
TRAIN_SPLITS += [Split("blur", s, _BLUR, 24) for s in (7, 8)]
# Held out: the benchmark's seeds, each condition on both seeds; blur goes beyond the training range.
HELD_OUT_CONDITIONS = {
    "day": Conditions(lighting=Lighting.DAY, workers_per_camera=0.3),
    "night": Conditions(lighting=Lighting.NIGHT, noise_sigma=(4.0, 8.0), workers_per_camera=0.3),
    "blur": Conditions(blur_sigma_px=(1.5, 2.5), motion_blur_px=(3.0, 7.0), workers_per_camera=0.3),
}
HELD_OUT_SPLITS = [Split(name, s, c, 8) for name, c in HELD_OUT_CONDITIONS.items() for s in (901, 902)]


@dataclass
class Thumbs:
    """Letterboxed thumbnails and their labels."""

    images: npt.NDArray[np.uint8]  # N×H×W×3 BGR
    labels: npt.NDArray[np.int64]  # index into CLASSES
    cameras: list[str]

    @classmethod
    def concat(cls, parts: list[Thumbs]) -> Thumbs:
        """All parts as one set."""
        return cls(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.labels for p in parts]),
            [c for p in parts for c in p.cameras],
        )


def _times(split: Split) -> list[float]:
    """Instants spread over the whole horizon, so that each set mixes standing, moving, day and night."""
    rng = np.random.default_rng([split.seed, zlib.crc32(split.name.encode())])
    return sorted(float(t) for t in rng.uniform(0, (HORIZON_H - 1) * 3600, split.times))


def _render(job: tuple[Split, list[float]]) -> Thumbs:
    split, times = job
    facility = load_facility(LAYOUT)
    scenario = Scenario(seed=split.seed, horizon_h=HORIZON_H, conditions=split.conditions)
    thumbs = generate(facility, scenario, times)
    images = np.zeros((len(thumbs), INPUT_HEIGHT, INPUT_WIDTH, 3), np.uint8)
    for i, t in enumerate(thumbs):
        images[i] = letterbox(t.image, INPUT_HEIGHT, INPUT_WIDTH)
    labels = np.array([CLASSES.index(t.series) for t in thumbs], np.int64)
    return Thumbs(images, labels, [t.camera_id for t in thumbs])


def load_splits(splits: list[Split], data_dir: Path, label: str) -> tuple[dict[Split, Thumbs], int]:
    """Render (on all cores) or load each split, chunk by chunk, cached as .npz; also how many chunks
    were rendered rather than loaded."""
    jobs: list[tuple[Split, int, list[float], Path]] = []
    for split in splits:
        if split.seed in RESERVED_SEEDS and label == "training":
            raise SystemExit(f"seed {split.seed} is reserved for evaluation (900-999)")
        times = _times(split)
        for k in range(0, len(times), CHUNK_TIMES):
            path = (
                data_dir / f"{split.name}_s{split.seed}_t{split.times}_c{k}_{INPUT_HEIGHT}x{INPUT_WIDTH}.npz"
            )
            jobs.append((split, k, times[k : k + CHUNK_TIMES], path))
    results: dict[tuple[Split, int], Thumbs] = {}
    missing = []
    for split, k, times, path in jobs:
        if path.exists():
            data = np.load(path)
            results[split, k] = Thumbs(data["images"], data["labels"], [str(c) for c in data["cameras"]])
        else:
            missing.append((split, k, times, path))
    if missing:
        data_dir.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool, Progress() as progress:
            task = progress.add_task(f"rendering {label} thumbnails", total=sum(len(m[2]) for m in missing))
            for (split, k, times, path), part in zip(
                missing, pool.map(_render, [(m[0], m[2]) for m in missing]), strict=True
            ):
                np.savez_compressed(
                    path, images=part.images, labels=part.labels, cameras=np.array(part.cameras)
                )
                results[split, k] = part
                progress.advance(task, len(times))
    return {s: Thumbs.concat([results[j[0], j[1]] for j in jobs if j[0] == s]) for s in splits}, len(missing)


def negatives(count: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Pictures of no locomotive (noise, flat colours, gradients, blobs), letterboxed like thumbnails."""
    out = np.zeros((count, INPUT_HEIGHT, INPUT_WIDTH, 3), np.uint8)
    for i in range(count):
        h, w = int(rng.integers(24, 600)), int(rng.integers(24, 700))
        kind = i % 6
        if kind == 0:
            img = rng.integers(0, 256, (h, w, 3))
        elif kind == 1:
            img = rng.normal(rng.uniform(0, 255), rng.uniform(5, 90), (h, w, 3))
        elif kind == 2:
            img = np.broadcast_to(rng.uniform(0, 255, 3), (h, w, 3)) + rng.normal(
                0, rng.uniform(0, 8), (h, w, 3)
            )
        elif kind == 3:
            along = rng.random() < 0.5
            ramp = np.linspace(0, 1, w)[None, :, None] if along else np.linspace(0, 1, h)[:, None, None]
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            img = np.broadcast_to(a + (b - a) * ramp, (h, w, 3))
        elif kind == 4:
            # A wall or sheet in a livery colour: without this the net answers from colour alone.
            series = list(SERIES.values())[int(rng.integers(len(SERIES)))]
            colour = np.array([series.body, series.stripe, series.roof][int(rng.integers(3))], np.float64)
            colour = colour * rng.uniform(0.3, 1.3) + rng.uniform(-20, 20, 3)
            img = np.broadcast_to(colour, (h, w, 3)) + rng.normal(0, rng.uniform(0, 10), (h, w, 3))
        else:
            small = rng.uniform(0, 255, (int(rng.integers(2, 8)), int(rng.integers(2, 8)), 3)).astype(
                np.float32
            )
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        out[i] = letterbox(
            np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8)), INPUT_HEIGHT, INPUT_WIDTH
        )
    return out


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SeriesNet(nn.Module):
    """Input: N×3×128×192 float in [0, 1] (BGR). Output: N×classes logits."""

    def __init__(self, classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2),  # 64×96
            _block(w, 2 * w, 2),  # 32×48
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),  # 16×24
            _block(4 * w, 4 * w, 1),
            _block(4 * w, 6 * w, 2),  # 8×12
            _block(6 * w, 8 * w, 2),  # 4×6
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        f = self.features(x - 0.5)
        return self.head(f.mean(dim=(2, 3)))


class Deployable(nn.Module):
    """What is exported: uint8 NHWC BGR thumbnails in, class probabilities out."""

    def __init__(self, net: SeriesNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, thumbnails: torch.Tensor) -> torch.Tensor:
        """Probabilities N×classes."""
        x = thumbnails.permute(0, 3, 1, 2).float() / 255.0
        return torch.softmax(self.net(x), dim=1)


def to_input(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    """The thumbnails (uint8 NHWC) as the network's NCHW float input in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror, zoom and shift (partial views), light, white balance, softening and noise."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    zoom = 1.0 / (1.0 + 0.4 * torch.rand(n, generator=gen))
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 2 * (1 - zoom)[:, None]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = zoom, zoom * (0.9 + 0.2 * torch.rand(n, generator=gen))
    theta[:, :, 2] = shift
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    soft = torch.rand(n, generator=gen) < 0.3
    x = torch.where(soft[:, None, None, None], nn.functional.avg_pool2d(x, 3, 1, 1), x)
    gain = (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen)) * (
        0.9 + 0.2 * torch.rand(n, 3, 1, 1, generator=gen)
    )
    noise = 0.04 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return (x * gain + noise).clamp(0, 1)


def train(
    net: SeriesNet,
    data: Thumbs,
    negative: npt.NDArray[np.uint8],
    epochs: int,
    batch: int,
    seed: int,
) -> list[float]:
    """Cross-entropy on thumbnails; on negatives, cross-entropy to the uniform distribution."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # Series are not equally common in the fleet: draw each class equally often.
    counts = np.bincount(data.labels, minlength=len(CLASSES)).astype(np.float64)
    weights = torch.from_numpy(1.0 / counts[data.labels])
    steps_per_epoch = len(data.labels) // batch
    neg_per_batch = max(1, batch // 8) if len(negative) else 0
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=4e-3, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    labels = torch.from_numpy(data.labels)
    losses = []
    with Progress() as progress:
        task = progress.add_task("training", total=epochs * steps_per_epoch)
        for epoch in range(epochs):
            net.train()
            total = 0.0
            for _ in range(steps_per_epoch):
                idx = torch.multinomial(weights, batch, replacement=True, generator=gen).numpy()
                x = to_input(data.images[idx])
                if neg_per_batch:
                    nidx = torch.randint(len(negative), (neg_per_batch,), generator=gen).numpy()
                    x = torch.cat([x, to_input(negative[nidx])])
                logits = net(augment(x, gen))
                loss = nn.functional.cross_entropy(logits[:batch], labels[idx], label_smoothing=0.05)
                if neg_per_batch:
                    uniform = -nn.functional.log_softmax(logits[batch:], dim=1).mean()
                    loss = loss + 0.5 * uniform
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
                progress.update(
                    task, advance=1, description=f"epoch {epoch + 1}/{epochs} loss {loss.item():.3f}"
                )
            losses.append(total / steps_per_epoch)
            log.info("epoch %d: mean loss %.4f", epoch + 1, losses[-1])
    return losses


def export(net: SeriesNet, out: Path) -> Path:
    """FP32 IR (`series.xml`/`.bin`) and labels.json."""
    import openvino as ov

    net.eval()
    example = torch.zeros((1, INPUT_HEIGHT, INPUT_WIDTH, 3), dtype=torch.uint8)
    model = ov.convert_model(Deployable(net), example_input=example)
    model.reshape({model.input(0): ov.PartialShape([-1, INPUT_HEIGHT, INPUT_WIDTH, 3])})
    model.input(0).get_tensor().set_names({"thumbnails"})
    model.output(0).get_tensor().set_names({"probabilities"})
    out.mkdir(parents=True, exist_ok=True)
    xml = out / MODEL_XML
    ov.save_model(model, xml, compress_to_fp16=False)
    labels = {
        "name": NAME,
        "version": VERSION,
        "classes": list(CLASSES),
        "input": {
            "height": INPUT_HEIGHT,
            "width": INPUT_WIDTH,
            "layout": "NHWC",
            "color": "BGR",
            "dtype": "u8",
        },
        "preprocessing": "cloud.recognition.series.letterbox: keep aspect, centre on black",
    }
    (out / LABELS_JSON).write_text(json.dumps(labels, indent=2) + "\n")
    return xml


def evaluate(model_dir: Path, held_out: dict[Split, Thumbs], threshold: float) -> dict[str, Any]:
    """Accuracy per condition and a confusion matrix, through the runtime class on the exported IR."""
    clf = SeriesClassifier(model_dir, threshold=threshold)
    sets: dict[str, list[Thumbs]] = {}
    for split, thumbs in held_out.items():
        sets.setdefault(split.name, []).append(thumbs)
    merged = {name: Thumbs.concat(parts) for name, parts in sets.items()}
    merged = {"overall": Thumbs.concat(list(merged.values())), **merged}
    result: dict[str, Any] = {}
    for name, thumbs in merged.items():
        probs = clf.probabilities(list(thumbs.images))
        pred, conf = probs.argmax(1), probs.max(1)
        accepted = conf >= threshold
        result[name] = {
            "thumbnails": len(thumbs.labels),
            "accuracy": round(float((pred == thumbs.labels).mean()), 4),
            "accepted_at_threshold": round(float(accepted.mean()), 4),
            "accuracy_of_accepted": round(float((pred == thumbs.labels)[accepted].mean()), 4),
        }
        if name == "overall":
            confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
            np.add.at(confusion, (thumbs.labels, pred), 1)
            result["confusion"] = {
                "rows_truth_columns_predicted": list(CLASSES),
                "matrix": confusion.tolist(),
            }
    rng = np.random.default_rng(12345)
    noise = [rng.integers(0, 256, (200, 400, 3), dtype=np.uint8) for _ in range(20)]
    grey = [np.full((200, 400, 3), v, np.uint8) for v in range(0, 256, 16)]
    result["non_locomotive"] = {
        "uniform_noise_max_confidence": round(float(clf.probabilities(noise).max()), 4),
        "flat_grey_max_confidence": round(float(clf.probabilities(grey).max()), 4),
    }
    return result


def measure_speed(model_dir: Path, thumbs: list[npt.NDArray[np.uint8]]) -> dict[str, float]:
    """Milliseconds per raw thumbnail (letterbox + inference), one at a time and in batches of 16."""
    clf = SeriesClassifier(model_dir)
    for image in thumbs[:20]:
        clf.classify(image)
    t0 = time.perf_counter()
    for image in thumbs:
        clf.classify(image)
    single = (time.perf_counter() - t0) / len(thumbs) * 1000
    t0 = time.perf_counter()
    for start in range(0, len(thumbs), 16):
        clf.classify_batch(thumbs[start : start + 16])
    batched = (time.perf_counter() - t0) / len(thumbs) * 1000
    return {"ms_per_thumbnail_single": round(single, 2), "ms_per_thumbnail_batch16": round(batched, 2)}


def write_card(out: Path, metrics: dict[str, Any]) -> None:
    """MODEL_CARD.md from metrics.json's figures."""
    acc = metrics["accuracy"]
    rows = [
        ("accuracy (top-1)", "accuracy"),
        (f"answered at threshold {metrics['threshold']}", "accepted_at_threshold"),
        ("accuracy of answered", "accuracy_of_accepted"),
        ("thumbnails", "thumbnails"),
    ]
    sets = ["overall", *HELD_OUT_CONDITIONS]
    table = ["| metric | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for title, key in rows:
        cells = [f"{acc[s][key]:.4f}" if key != "thumbnails" else str(acc[s][key]) for s in sets]
        table.append(f"| {title} | " + " | ".join(cells) + " |")
    confusion = acc["confusion"]
    ctable = ["| truth \\ predicted | " + " | ".join(CLASSES) + " |", "|---" * (len(CLASSES) + 1) + "|"]
    for name, row in zip(CLASSES, confusion["matrix"], strict=True):
        ctable.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    neg = acc["non_locomotive"]
    speed = metrics["speed"]
    training = metrics["training"]
    card = f"""# loco_model — locomotive series classifier, version {VERSION}

Tells the series (model) of a locomotive from a side thumbnail cut by the edge's ThumbnailMaker:
one of {", ".join(CLASSES)}. Runs in the cloud with OpenVINO (`cloud/recognition/series.py`).
Figures below are written by `python -m training.recognition.series_train`; do not edit them by hand.

## Files

| file | what |
|---|---|
| `series.xml`, `series.bin` | FP32 IR ({metrics["ir_bytes"] / 1e6:.2f} MB) |
| `labels.json` | class names in output order, input size, model name and version |
| `metrics.json` | every figure of this card, machine-readable |

## Input and output

- **Pre-processing (`cloud.recognition.series.letterbox`, not in the IR; training uses the same
  function):** the BGR thumbnail of any size is scaled to fit {INPUT_HEIGHT} × {INPUT_WIDTH} keeping its
  aspect ratio (area averaging when shrinking) and centred on a black canvas.
- **Input** `thumbnails`: `u8[N, {INPUT_HEIGHT}, {INPUT_WIDTH}, 3]`, BGR, NHWC; scaling is in the IR.
- **Output** `probabilities`: `f32[N, {len(CLASSES)}]`, softmax over the classes in `labels.json` order.
- **Post-processing (`SeriesClassifier`):** the most probable series, or `None` when its probability
  is below the threshold (default 0.6). Compiled with `INFERENCE_PRECISION_HINT=f32` and
  `PERFORMANCE_HINT=LATENCY`.

## Network

Seven 3×3 convolution blocks (BatchNorm, ReLU; five with stride 2) from 16 to 128 channels, global
average pooling, dropout, one linear layer. {training["parameters"]:,} parameters. Source:
`training/recognition/series_train.py` (`SeriesNet`).

## Training data

Thumbnails rendered by the facility simulator (`sim/`) on the example depot
(`examples/facility.yaml`, 16 cameras) and cropped by the edge's own ThumbnailMaker from ground-truth
extents (at least {6.0:g} m of the locomotive in view), JPEG-decoded as the cloud receives them.
Seeds 1-4: clock-driven day and night, noise σ 1-6, defocus σ ≤ 1.5 px, shake ≤ 5 px, 0.8 workers per
view; seeds 5-6: forced night, noise σ 2-8 (doubled at night); seeds 7-8: defocus σ 0.5-2 px, shake
1-6 px, 1.5 workers per view. {training["times_per_seed"]} instants per seed spread over 71 hours, every
camera. Classes are drawn equally often. Augmentation: mirroring, zoom and shift (partial views),
gain and white-balance jitter, softening, noise. Non-locomotive pictures (noise, flat colours,
gradients, blobs; {training["negatives"]} of them) are trained towards the uniform distribution so that
they get no confident answer.

```json
{json.dumps(training, indent=2)}
```

## Accuracy (held-out simulator data)

Seeds 901 and 902, never trained on (seeds 900-999 are reserved for evaluation), each condition on
both seeds: `day` (forced daylight, 0.3 workers per view), `night` (shop lamps, noise σ 4-8 doubled),
`blur` (defocus σ 1.5-2.5 px and shake 3-7 px, partly beyond the training range; clock-driven day and
night). Measured on the exported IR through `SeriesClassifier`, f32.

{chr(10).join(table)}

Confusion matrix, all held-out sets:

{chr(10).join(ctable)}

Non-locomotive pictures: the highest probability given to 20 uniform-noise 200×400 pictures is
{neg["uniform_noise_max_confidence"]:.3f}, to 16 flat grey ones {neg["flat_grey_max_confidence"]:.3f}
(the runtime answers `None` below {metrics["threshold"]}).

## Speed (this machine: 2 cores, AVX-512 + AMX; f32, LATENCY hint)

| measure | ms per thumbnail |
|---|---|
| one raw thumbnail at a time (letterbox + inference) | {speed["ms_per_thumbnail_single"]} |
| batches of 16 | {speed["ms_per_thumbnail_batch16"]} |

## Reproduce

```bash
pip install -e '.[dev,train]'
python -m training.recognition.series_train   # data (cached), training, export, metrics
```

On 2 shared cores this run took {training["minutes_data"]} minutes for the data
({training["chunks_rendered_this_run"]} chunks of {CHUNK_TIMES} instants rendered, the rest loaded from
the cache, of {sum(-(-s.times // CHUNK_TIMES) for s in TRAIN_SPLITS + HELD_OUT_SPLITS)}) and
{training["minutes_training"]} minutes training.

## Limitations

- Trained and evaluated on simulator thumbnails only. The simulated series differ mainly by livery
  colour and body shape, which the network learns; real locomotives (weathering, repaints, dirt,
  real lighting) need fine-tuning on labelled real thumbnails before the figures mean anything.
- Only the six simulated series exist as classes; any other series is forced onto one of them
  (the threshold catches some, not all).
- The held-out sets use the example depot's cameras (new seeds, fleets, times and conditions, the same
  mountings); a new viewing angle is not part of the evaluation.
- Thumbnails are expected as the ThumbnailMaker cuts them (a locomotive's side, mostly filling the
  crop); a crop mostly of something else gets an unreliable answer. Noise, flat grey and random
  colours get none, but a flat patch in a livery's colour (a painted wall) can still pass the
  threshold: colour is the strongest cue. Very narrow crops (a third of a normal thumbnail's width)
  get no answer rather than a wrong one.

## Licence and origin

Trained from scratch in this repository on simulator output; no third-party weights.
"""
    (out / "MODEL_CARD.md").write_text(card)


def main() -> None:
    """Render or load the thumbnails, train, export the IR, measure it on the held-out seeds and write
    metrics.json and MODEL_CARD.md beside it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "ir_models" / NAME / VERSION)
    parser.add_argument("--data", type=Path, default=DATA_DIR / "series")
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--negatives", type=int, default=1000, help="Non-locomotive pictures (0: none).")
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(os.cpu_count() or 1)

    started = time.time()
    train_splits, rendered = load_splits(TRAIN_SPLITS, args.data, "training")
    train_set = Thumbs.concat(list(train_splits.values()))
    held_out, rendered_held_out = load_splits(HELD_OUT_SPLITS, args.data, "held-out")
    minutes_data = (time.time() - started) / 60
    counts = dict(zip(CLASSES, np.bincount(train_set.labels, minlength=len(CLASSES)).tolist(), strict=True))
    log.info(
        "data ready: %d training thumbnails %s (%.0f s)", len(train_set.labels), counts, time.time() - started
    )
    negative = negatives(args.negatives, np.random.default_rng(args.seed))

    net = SeriesNet(len(CLASSES))
    t0 = time.time()
    losses = train(net, train_set, negative, args.epochs, args.batch, args.seed)
    minutes_training = (time.time() - t0) / 60
    export(net, args.out)
    ir_bytes = sum((args.out / MODEL_XML).with_suffix(s).stat().st_size for s in (".xml", ".bin"))
    log.info("exported %s (%.2f MB)", args.out / MODEL_XML, ir_bytes / 1e6)

    metrics: dict[str, Any] = {
        "model": f"{NAME}:{VERSION}",
        "threshold": args.threshold,
        "ir_bytes": ir_bytes,
        "inference_precision": "f32",
    }
    metrics["accuracy"] = evaluate(args.out, held_out, args.threshold)
    metrics["training"] = {
        "train_seeds": sorted({s.seed for s in TRAIN_SPLITS}),
        "held_out_seeds": sorted({s.seed for s in HELD_OUT_SPLITS}),
        "times_per_seed": TRAIN_SPLITS[0].times,
        "train_thumbnails": len(train_set.labels),
        "train_per_class": counts,
        "negatives": args.negatives,
        "input": [INPUT_HEIGHT, INPUT_WIDTH, 3],
        "parameters": sum(p.numel() for p in net.parameters()),
        "epochs": args.epochs,
        "batch": args.batch,
        "optimizer": "AdamW, one-cycle lr 4e-3, weight decay 1e-4, label smoothing 0.05",
        "seed": args.seed,
        "final_loss": round(losses[-1], 4),
        "minutes_training": round(minutes_training, 1),
        "chunks_rendered_this_run": rendered + rendered_held_out,
        "minutes_data": round(minutes_data, 1),
    }
    facility = load_facility(LAYOUT)
    raw = generate(facility, Scenario(seed=903, conditions=HELD_OUT_CONDITIONS["day"]), [7200.0, 30000.0])
    metrics["speed"] = measure_speed(args.out, [t.image for t in raw] * 4)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_card(args.out, metrics)
    for name in ("overall", *HELD_OUT_CONDITIONS):
        log.info("held-out %s: accuracy %.4f", name, metrics["accuracy"][name]["accuracy"])
    log.info("non-locomotive pictures: %s", metrics["accuracy"]["non_locomotive"])


if __name__ == "__main__":
    main()
