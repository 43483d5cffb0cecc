"""`depotwatch flow …`: record a flow's traffic, replay a recording into a flow."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from depotwatch.cli_support import console, exit_on_error
from depotwatch.promotion.edge_flows import FLOWS_FILE, MODELS
from shared.mqtt import BrokerConfig

if TYPE_CHECKING:
    from depotwatch.promotion.promote import Outcome

flow_app = typer.Typer(help="Data flows: recording, replay, promotion and rollback.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Cloud service YAML (its broker and layout are used).")
]


def _broker_and_site(config_path: Path) -> tuple[BrokerConfig, str]:
    from cloud.config import load_cloud_config
    from shared.layout import load_facility

    config = load_cloud_config(config_path)
    return config.broker, load_facility(config.layout).site


@flow_app.command("record")
def record(
    out: Annotated[Path, typer.Option("--out", "-o", help="Recording file to write (.dwrec).")],
    config: ConfigOpt,
    flow: Annotated[str, typer.Option(help="Flow to record.")] = "prod",
    minutes: Annotated[float | None, typer.Option(help="Stop after this long; else at Ctrl-C.")] = None,
) -> None:
    """Record a flow's detections and thumbnails as they arrive at the broker."""
    from depotwatch.recording import Recorder

    with exit_on_error():
        broker, site = _broker_and_site(config)
        recorder = Recorder(broker, site, flow, out)
        recorder.start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"recording flow {flow} of {site} to {out}; Ctrl-C stops")
    stop.wait(minutes * 60 if minutes else None)
    recorder.stop()
    console.print(f"{recorder.summary()} in {out}")


@flow_app.command("replay")
def replay_recording(
    recording: Annotated[Path, typer.Argument(help="A recording made by `depotwatch flow record`.")],
    into: Annotated[str, typer.Option("--into", help="Flow to publish into (not the recorded one).")],
    config: ConfigOpt,
    speed: Annotated[float, typer.Option(help="Pace relative to the recording (1 = as recorded).")] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="As fast as the broker acknowledges.")] = False,
) -> None:
    """Publish a recording into a named flow; the cloud estimates it like live data (give that flow
    `clock: data` in the cloud config for results independent of the pace)."""
    from depotwatch.recording import read_header, replay

    with exit_on_error():
        if into == read_header(recording)["flow"]:
            raise typer.BadParameter(
                f"the recording is of flow {into!r}: replay it into another", param_hint="--into"
            )
        broker, _ = _broker_and_site(config)
        sent = replay(recording, broker, into, None if fast else speed)
    console.print(f"replayed {sent} messages into flow {into}")


FlowsFileOpt = Annotated[Path, typer.Option("--flows-file", help="The flows file the edge rollout reads.")]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(help="Roll the change out now: ansible-playbook ansible/edge.yml with this inventory."),
]


CloudConfigOpt = Annotated[
    Path,
    typer.Option(help="The cloud config holding the flows' estimator settings and recognition models."),
]
CLOUD_CONFIG = Path("compose/cloud.yaml")


@flow_app.command("promote")
def promote_flow(
    flow: Annotated[str, typer.Argument(help="The flow whose models and settings become prod's, e.g. dev.")],
    flows_file: FlowsFileOpt = FLOWS_FILE,
    cloud_config: CloudConfigOpt = CLOUD_CONFIG,
    inventory: InventoryOpt = None,
) -> None:
    """Make a flow's own LPE (edge), estimator settings and recognition models (cloud) prod's;
    reversible with `flow rollback`."""
    from depotwatch.promotion.promote import promote

    with exit_on_error():
        outcome = promote(flow, flows_file, cloud_config, MODELS)
    if outcome.edge is not None:
        was = outcome.edge.edge_node_flow_history[-1]
        console.print(
            f"edge: prod now runs LPE {outcome.edge.edge_node_lpe_version} "
            f"{outcome.edge.edge_node_lpe_precision} (was {was.edge_node_lpe_version} "
            f"{was.edge_node_lpe_precision}); written to {flows_file}"
        )
    _apply(outcome, flows_file, cloud_config, inventory)


@flow_app.command("rollback")
def rollback_flow(
    flows_file: FlowsFileOpt = FLOWS_FILE,
    cloud_config: CloudConfigOpt = CLOUD_CONFIG,
    inventory: InventoryOpt = None,
) -> None:
    """Undo the last promotion, wherever it made changes."""
    from depotwatch.promotion.promote import rollback

    with exit_on_error():
        outcome = rollback(flows_file, cloud_config)
    if outcome.edge is not None:
        console.print(
            f"edge: prod back on LPE {outcome.edge.edge_node_lpe_version} "
            f"{outcome.edge.edge_node_lpe_precision}"
        )
    _apply(outcome, flows_file, cloud_config, inventory)


def _apply(outcome: Outcome, flows_file: Path, cloud_config: Path, inventory: Path | None) -> None:
    if outcome.cloud is not None:
        console.print(f"{outcome.cloud}; written to {cloud_config}")
        # Recreated, not restarted: the stack mounts the file, and the edit replaced it.
        console.print(
            "restart the cloud services on it:  docker compose -f compose/docker-compose.yml "
            "up -d --force-recreate cloud recognition",
            soft_wrap=True,
        )
    if outcome.edge is not None:
        _roll_out(flows_file, inventory)


def _roll_out(flows_file: Path, inventory: Path | None) -> None:
    command = ["ansible-playbook", "-i", str(inventory or "ansible/inventory.yml"), "ansible/edge.yml"]
    command += ["-e", f"@{flows_file}"]
    if inventory is None:
        console.print("roll it out with:  " + " ".join(command), soft_wrap=True)
        return
    result = subprocess.run(command, check=False)
    if result.returncode:
        console.print("[red]the rollout failed; boxes that did not come up were put back[/red]")
        raise typer.Exit(result.returncode)
