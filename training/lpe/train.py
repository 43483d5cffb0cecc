"""Train the LPE from simulator data and export it as OpenVINO IR (FP32 and INT8).

    python -m training.lpe.train --out ir_models/lpe/1.0.0

Renders training and validation sets (cached under data/lpe/), trains the network on the CPU, exports
`lpe_fp32.xml` and an NNCF post-training-quantised `lpe_int8.xml` and records the training in
training.json beside them. The model card's figures come from the benchmark on held-out sets
(`python -m bench.lpe --model-dir DIR --update-card`, which `make train-lpe` runs next).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from training.lpe.data import (
    DATA_DIR,
    HELD_OUT_SEED,
    LAYOUT,
    TRAIN_CONDITIONS,
    TRAIN_SEEDS,
    VAL_SEED,
    Samples,
    cached,
    render_samples,
    scenario_for,
)
from training.lpe.net import Deployable, LocoStripNet

log = logging.getLogger("training.lpe")

REPO = Path(__file__).resolve().parents[2]
EDGE_POS_WEIGHT = 8.0


def load_sets(data_dir: Path, train_frames: int, val_frames: int) -> tuple[Samples, Samples]:
    """The training set (every training seed's frames) and the validation set, rendered or read from the cache
    under `data_dir`."""
    per_seed = train_frames // len(TRAIN_SEEDS)
    parts = [
        cached(
            data_dir / f"train_{seed}_{per_seed}.npz",
            lambda seed=seed: render_samples(
                LAYOUT, scenario_for(seed, TRAIN_CONDITIONS), per_seed, f"train {seed}"
            ),
        )
        for seed in TRAIN_SEEDS
    ]
    train = Samples(
        np.concatenate([p.strips for p in parts]),
        np.concatenate([p.targets for p in parts]),
        [c for p in parts for c in p.camera_ids],
        [t for p in parts for t in p.truth],
    )
    val = cached(
        data_dir / f"val_{VAL_SEED}_{val_frames}.npz",
        lambda: render_samples(LAYOUT, scenario_for(VAL_SEED, TRAIN_CONDITIONS), val_frames, "validation"),
    )
    return train, val


def augment(
    strips: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror (a view from the other direction swaps the ends), light and noise jitter."""
    n = strips.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    strips = torch.where(flip[:, None, None, None], strips.flip(-1), strips)
    mirrored = torch.stack([targets[:, 0].flip(-1), targets[:, 2].flip(-1), targets[:, 1].flip(-1)], dim=1)
    targets = torch.where(flip[:, None, None], mirrored, targets)
    gain = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen)
    bias = 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    noise = 0.03 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(strips.shape, generator=gen)
    return (strips * gain + bias + noise).clamp(0, 1), targets


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the occupancy scores plus twice that of the end scores, whose positive columns weigh
    1 + EDGE_POS_WEIGHT."""
    occ = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    weight = 1.0 + EDGE_POS_WEIGHT * targets[:, 1:]
    edges = nn.functional.binary_cross_entropy_with_logits(logits[:, 1:], targets[:, 1:], weight=weight)
    return occ + 2.0 * edges


def to_input(strips: np.ndarray) -> torch.Tensor:
    """NHWC uint8 strips as the network's NCHW float input in [0, 1]."""
    return torch.from_numpy(strips).permute(0, 3, 1, 2).float() / 255.0


def train(
    net: LocoStripNet, train_set: Samples, val: Samples, epochs: int, batch: int, seed: int
) -> dict[str, float]:
    """Train `net` with AdamW and a one-cycle schedule on augmented batches, keeping the weights of the epoch
    with the lowest validation loss; returns that loss and epoch."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * (len(train_set.strips) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    targets = torch.from_numpy(train_set.targets)
    best: dict[str, float] = {"val_loss": float("inf")}
    best_state = None
    with Progress() as progress:
        task = progress.add_task("training", total=steps)
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(train_set.strips), generator=gen)
            for i in range(len(order) // batch):
                idx = order[i * batch : (i + 1) * batch]
                x, y = augment(to_input(train_set.strips[idx.numpy()]), targets[idx], gen)
                loss = loss_fn(net(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                progress.update(
                    task, advance=1, description=f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f}"
                )
            val_loss = evaluate_loss(net, val)
            log.info("epoch %d: validation loss %.4f", epoch + 1, val_loss)
            if val_loss < best["val_loss"]:
                best = {"val_loss": val_loss, "epoch": float(epoch + 1)}
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
    assert best_state is not None
    net.load_state_dict(best_state)
    return best


@torch.no_grad()
def evaluate_loss(net: LocoStripNet, samples: Samples, batch: int = 128) -> float:
    """Mean loss of `net` over `samples`, without gradients."""
    net.eval()
    total = 0.0
    for i in range(0, len(samples.strips), batch):
        x = to_input(samples.strips[i : i + batch])
        y = torch.from_numpy(samples.targets[i : i + batch])
        total += loss_fn(net(x), y).item() * len(x)
    return total / len(samples.strips)


def export(net: LocoStripNet, out: Path, calibration: np.ndarray) -> tuple[Path, Path]:
    """FP32 IR and an INT8 IR quantised with NNCF on `calibration` strips."""
    import nncf
    import openvino as ov

    net.eval()
    example = torch.zeros((1, 64, 256, 3), dtype=torch.uint8)
    model = ov.convert_model(Deployable(net), example_input=example)
    model.reshape({model.input(0): ov.PartialShape([-1, 64, 256, 3])})
    model.input(0).get_tensor().set_names({"strips"})
    model.output(0).get_tensor().set_names({"columns"})
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "lpe_fp32.xml"
    ov.save_model(model, fp32, compress_to_fp16=False)
    batches = [calibration[i : i + 1] for i in range(len(calibration))]
    int8_model = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))
    int8 = out / "lpe_int8.xml"
    ov.save_model(int8_model, int8, compress_to_fp16=False)
    return fp32, int8


def main() -> None:
    """Render or load the data, train (or reuse the last weights), export both IRs and write training.json
    beside them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "ir_models" / "lpe" / "1.0.0")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--train-frames", type=int, default=8000)
    parser.add_argument("--val-frames", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse-weights",
        action="store_true",
        help="Skip training: export data/lpe/lpe_last.pt.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    started = time.time()
    train_set, val = load_sets(args.data, args.train_frames, args.val_frames)
    log.info(
        "data ready: %d train, %d validation strips (%.0f s)",
        len(train_set.strips),
        len(val.strips),
        time.time() - started,
    )
    net = LocoStripNet()
    weights, record = args.data / "lpe_last.pt", args.data / "lpe_last.json"
    if args.reuse_weights:
        net.load_state_dict(torch.load(weights))
        best = json.loads(record.read_text())
    else:
        best = train(net, train_set, val, args.epochs, args.batch, args.seed)
        best["minutes"] = round((time.time() - started) / 60, 1)
        torch.save(net.state_dict(), weights)
        record.write_text(json.dumps(best))
    rng = np.random.default_rng(args.seed)
    calibration = train_set.strips[rng.choice(len(train_set.strips), 300, replace=False)]
    fp32, int8 = export(net, args.out, calibration)
    log.info("exported %s and %s; best epoch %d", fp32, int8, best["epoch"])

    training = {
        "train_frames": len(train_set.strips),
        "val_frames": len(val.strips),
        "epochs": args.epochs,
        "best_epoch": int(best["epoch"]),
        "val_loss": round(best["val_loss"], 5),
        "train_seeds": list(TRAIN_SEEDS),
        "held_out_seed": HELD_OUT_SEED,
        "minutes_data_and_training": best["minutes"],
    }
    # The model card's figures come from its benchmark (`python -m bench.lpe --update-card`, which
    # `make train-lpe` runs next), which reads this record of the training.
    (args.out / "training.json").write_text(json.dumps(training, indent=2))


if __name__ == "__main__":
    main()
