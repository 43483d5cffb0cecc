"""Train the LPE from simulator data and export it as OpenVINO IR (FP32 and INT8).

    python -m training.lpe.train --out ir_models/lpe/2.0.0

Renders training and validation sets (cached under data/lpe/): camera placements drawn from the depot
envelope, each in a look of its own and beside neighbouring tracks with traffic, and the example
depot's cameras. Trains the network on the CPU, exports `lpe_fp32.xml` and an NNCF
post-training-quantised `lpe_int8.xml`, and keeps the weights (`lpe_state.pt`, what fine-tuning starts
from) and a record of the training (training.json) beside them. The model card's figures come from
the benchmark on held-out sets (`python -m bench.lpe --model-dir DIR --update-card`, which
`make train-lpe` runs next).
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
    PLACEMENT_CONDITIONS,
    PLACEMENTS_PER_SEED,
    TRAIN_CONDITIONS,
    TRAIN_PLACEMENT_SEEDS,
    TRAIN_SEEDS,
    VAL_PLACEMENT_SEEDS,
    VAL_SEED,
    Job,
    Samples,
    cached,
    placement_jobs,
    render_jobs,
    scenario_for,
)
from training.lpe.net import Deployable, LocoStripNet, scale_input

log = logging.getLogger("training.lpe")

REPO = Path(__file__).resolve().parents[2]
EDGE_POS_WEIGHT = 8.0
# Share of strips from the example depot (the demo's look); the rest come from drawn placements.
EXAMPLE_SHARE = 0.2


def load_sets(
    data_dir: Path, train_frames: int, val_frames: int, placement_seeds: int
) -> tuple[Samples, Samples]:
    """The training set (over the first `placement_seeds` training placement seeds) and the
    validation set (placements and example depot alike, in the same shares, the validation's on
    placement and scenario seeds of its own), rendered or read from the cache under `data_dir`."""
    return (
        _mixed(data_dir, "train", TRAIN_PLACEMENT_SEEDS[:placement_seeds], TRAIN_SEEDS, train_frames),
        _mixed(data_dir, "val", VAL_PLACEMENT_SEEDS, (VAL_SEED,), val_frames),
    )


def _mixed(
    data_dir: Path, name: str, placement_seeds: tuple[int, ...], example_seeds: tuple[int, ...], frames: int
) -> Samples:
    example = round(frames * EXAMPLE_SHARE) // len(example_seeds)
    per_placement = (frames - example * len(example_seeds)) // (len(placement_seeds) * PLACEMENTS_PER_SEED)
    parts = [
        cached(
            data_dir / f"{name}_placements_{seed}_{PLACEMENTS_PER_SEED}x{per_placement}.npz",
            lambda seed=seed: render_jobs(
                placement_jobs(
                    data_dir / "layouts", seed, PLACEMENTS_PER_SEED, per_placement, PLACEMENT_CONDITIONS
                ),
                f"{name} placements {seed}",
            ),
        )
        for seed in placement_seeds
    ] + [
        cached(
            data_dir / f"{name}_example_{seed}_{example}.npz",
            lambda seed=seed: render_jobs(
                [Job(LAYOUT, scenario_for(seed, TRAIN_CONDITIONS), example)], f"{name} example {seed}"
            ),
        )
        for seed in example_seeds
    ]
    return Samples.joined(parts)


def inputs(samples: Samples, idx: np.ndarray | slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The network's inputs for some of `samples`: strips in [0, 1] NCHW, validity N×1×H×W, scale N×1."""
    strips = torch.from_numpy(samples.strips[idx]).permute(0, 3, 1, 2).float() / 255.0
    valid = torch.from_numpy(samples.valid[idx])[:, None].float()
    scale = scale_input(torch.from_numpy(samples.metres_per_column[idx]))
    return strips, valid, scale


def augment(
    strips: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror (a view from the other direction swaps the ends), light, colour and noise jitter; cells
    outside the image stay black, as the runtime draws them."""
    n = strips.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    strips = torch.where(flip[:, None, None, None], strips.flip(-1), strips)
    valid = torch.where(flip[:, None, None, None], valid.flip(-1), valid)
    mirrored = torch.stack([targets[:, 0].flip(-1), targets[:, 2].flip(-1), targets[:, 1].flip(-1)], dim=1)
    targets = torch.where(flip[:, None, None], mirrored, targets)
    gain = (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen)) * (
        0.9 + 0.2 * torch.rand(n, 3, 1, 1, generator=gen)
    )
    bias = 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    noise = 0.03 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(strips.shape, generator=gen)
    return ((strips * gain + bias + noise).clamp(0, 1) * valid, valid, targets)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the occupancy scores plus twice that of the end scores, whose positive columns weigh
    1 + EDGE_POS_WEIGHT."""
    occ = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    weight = 1.0 + EDGE_POS_WEIGHT * targets[:, 1:]
    edges = nn.functional.binary_cross_entropy_with_logits(logits[:, 1:], targets[:, 1:], weight=weight)
    return occ + 2.0 * edges


def train(
    net: LocoStripNet, train_set: Samples, val: Samples, epochs: int, batch: int, seed: int, max_lr: float
) -> dict[str, float]:
    """Train `net` with AdamW and a one-cycle schedule on augmented batches, keeping the weights of the epoch
    with the lowest validation loss; returns that loss and epoch."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * (len(train_set.strips) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=max_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.15)
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
                x, valid, scale = inputs(train_set, idx.numpy())
                x, valid, y = augment(x, valid, targets[idx], gen)
                loss = loss_fn(net(x, valid, scale), y)
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
        x, valid, scale = inputs(samples, slice(i, i + batch))
        y = torch.from_numpy(samples.targets[i : i + batch])
        total += loss_fn(net(x, valid, scale), y).item() * len(x)
    return total / len(samples.strips)


def export(net: LocoStripNet, out: Path, calibration: Samples) -> tuple[Path, Path]:
    """FP32 IR and an INT8 IR quantised with NNCF on the `calibration` samples."""
    import nncf
    import openvino as ov

    net.eval()
    example = (
        torch.zeros((1, 64, 256, 3), dtype=torch.uint8),
        torch.ones((1, 64, 256), dtype=torch.uint8),
        torch.full((1, 1), 0.055),
    )
    model = ov.convert_model(Deployable(net), example_input=example)
    model.reshape(
        {
            model.input(0): ov.PartialShape([-1, 64, 256, 3]),
            model.input(1): ov.PartialShape([-1, 64, 256]),
            model.input(2): ov.PartialShape([-1, 1]),
        }
    )
    for index, name in enumerate(("strips", "valid", "metres_per_column")):
        model.input(index).get_tensor().set_names({name})
    model.output(0).get_tensor().set_names({"columns"})
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / "lpe_fp32.xml"
    ov.save_model(model, fp32, compress_to_fp16=False)
    batches = [
        (
            calibration.strips[i : i + 1],
            calibration.valid[i : i + 1],
            calibration.metres_per_column[i : i + 1],
        )
        for i in range(len(calibration.strips))
    ]
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
    parser.add_argument("--out", type=Path, default=REPO / "ir_models" / "lpe" / "2.0.0")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--train-frames", type=int, default=12000)
    parser.add_argument("--val-frames", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--placement-seeds",
        type=int,
        default=len(TRAIN_PLACEMENT_SEEDS),
        help=f"Train on the first N placement seeds ({PLACEMENTS_PER_SEED} placements each); fewer "
        "placements give more frames each.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-lr", type=float, default=3e-3, help="Peak learning rate of the one-cycle schedule."
    )
    parser.add_argument(
        "--reuse-weights",
        action="store_true",
        help="Skip training: export data/lpe/lpe_last.pt.",
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="Start from these weights (a version's lpe_state.pt) instead of random ones.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    started = time.time()
    train_set, val = load_sets(args.data, args.train_frames, args.val_frames, args.placement_seeds)
    log.info(
        "data ready: %d train, %d validation strips (%.0f s)",
        len(train_set.strips),
        len(val.strips),
        time.time() - started,
    )
    net = LocoStripNet()
    if args.init is not None:
        net.load_state_dict(torch.load(args.init))
    weights, record = args.data / "lpe_last.pt", args.data / "lpe_last.json"
    if args.reuse_weights:
        net.load_state_dict(torch.load(weights))
        best = json.loads(record.read_text())
    else:
        best = train(net, train_set, val, args.epochs, args.batch, args.seed, args.max_lr)
        best["minutes"] = round((time.time() - started) / 60, 1)
        torch.save(net.state_dict(), weights)
        record.write_text(json.dumps(best))
    rng = np.random.default_rng(args.seed)
    picked = rng.choice(len(train_set.strips), min(300, len(train_set.strips)), replace=False)
    calibration = train_set.subset(np.sort(picked))
    fp32, int8 = export(net, args.out, calibration)
    torch.save(net.state_dict(), args.out / "lpe_state.pt")
    log.info("exported %s and %s; best epoch %d", fp32, int8, best["epoch"])

    training = {
        "train_frames": len(train_set.strips),
        "val_frames": len(val.strips),
        "epochs": args.epochs,
        "max_lr": args.max_lr,
        "best_epoch": int(best["epoch"]),
        "val_loss": round(best["val_loss"], 5),
        "train_seeds": list(TRAIN_SEEDS),
        "train_placement_seeds": list(TRAIN_PLACEMENT_SEEDS[: args.placement_seeds]),
        "placements_per_seed": PLACEMENTS_PER_SEED,
        "example_share": EXAMPLE_SHARE,
        "held_out_seed": HELD_OUT_SEED,
        "initial_weights": str(args.init) if args.init else "random",
        "minutes_data_and_training": best["minutes"],
    }
    # The model card's figures come from its benchmark (`python -m bench.lpe --update-card`, which
    # `make train-lpe` runs next), which reads this record of the training.
    (args.out / "training.json").write_text(json.dumps(training, indent=2))


if __name__ == "__main__":
    main()
