"""`depotwatch flow …`: record a flow's traffic, replay a recording into a flow."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import Annotated

import typer

from shared.cli_support import console, exit_on_error
from shared.mqtt import BrokerConfig
from shared.promotion import FLOWS_FILE

flow_app = typer.Typer(help="Data flows: recording and replay.", no_args_is_help=True)

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
    flow: Annotated[str, typer.Option(help="Flow to record.")] = "prod",
    minutes: Annotated[float | None, typer.Option(help="Stop after this long; else at Ctrl-C.")] = None,
    config: ConfigOpt = Path("cloud.yaml"),
) -> None:
    """Record a flow's detections and thumbnails as they arrive at the broker."""
    from shared.recording import Recorder

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
    speed: Annotated[float, typer.Option(help="Pace relative to the recording (1 = as recorded).")] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="As fast as the broker acknowledges.")] = False,
    config: ConfigOpt = Path("cloud.yaml"),
) -> None:
    """Publish a recording into a named flow; the cloud estimates it like live data (give that flow
    `clock: data` in the cloud config for results independent of the pace)."""
    from shared.recording import read_header, replay

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


@flow_app.command("promote")
def promote_flow(
    flow: Annotated[str, typer.Argument(help="The shadow flow whose model becomes prod's, e.g. dev.")],
    flows_file: FlowsFileOpt = FLOWS_FILE,
    inventory: InventoryOpt = None,
) -> None:
    """Make a shadow flow's model the prod one (reversible with `flow rollback`)."""
    from shared.promotion import promote

    with exit_on_error():
        flows = promote(flow, flows_file)
    console.print(
        f"prod now runs LPE {flows.edge_node_lpe_version} {flows.edge_node_lpe_precision} "
        f"(was {flows.edge_node_flow_history[-1].edge_node_lpe_version} "
        f"{flows.edge_node_flow_history[-1].edge_node_lpe_precision}); written to {flows_file}"
    )
    _roll_out(flows_file, inventory)


@flow_app.command("rollback")
def rollback_flow(flows_file: FlowsFileOpt = FLOWS_FILE, inventory: InventoryOpt = None) -> None:
    """Undo the last promotion."""
    from shared.promotion import rollback

    with exit_on_error():
        flows = rollback(flows_file)
    console.print(f"prod back on LPE {flows.edge_node_lpe_version} {flows.edge_node_lpe_precision}")
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
