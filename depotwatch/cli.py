"""The `depotwatch` command line: one entry point for every component."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer
from rich.progress import Progress
from rich.table import Table

from depotwatch.calibrate_cli import calibrate_app
from depotwatch.cli_support import console, errors, exit_on_error
from depotwatch.flow_cli import flow_app
from edge.config import LpeConfig
from shared.layout import Facility, load_facility
from sim.dataset import write_dataset
from sim.edge_source import with_sim
from sim.scenario import Lighting, Scenario, load_scenario
from sim.source import SimCamera, SimUrl
from sim.world import World

app = typer.Typer(help="depotwatch: live locomotive positions in a repair depot.", no_args_is_help=True)
layout_app = typer.Typer(help="Facility layouts.", no_args_is_help=True)
sim_app = typer.Typer(help="The facility simulator.", no_args_is_help=True)
edge_app = typer.Typer(help="The edge node.", no_args_is_help=True)
cloud_app = typer.Typer(help="The cloud service.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the cloud service.", no_args_is_help=True)
cloud_app.add_typer(keys_app, name="keys")
app.add_typer(layout_app, name="layout")
app.add_typer(sim_app, name="sim")
app.add_typer(edge_app, name="edge")
app.add_typer(cloud_app, name="cloud")
app.add_typer(flow_app, name="flow")
app.add_typer(calibrate_app, name="calibrate")

DEFAULT_LAYOUT = Path("examples/facility.yaml")
# The LPE an edge node runs unless its config names another.
DEFAULT_LPE = LpeConfig().model_dir

LayoutOpt = Annotated[Path, typer.Option("--layout", "-l", help="Facility layout YAML.")]
ScenarioOpt = Annotated[Path | None, typer.Option("--scenario", help="Simulator scenario YAML.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the scenario's seed.")]


def _load(layout: Path, scenario_path: Path | None, seed: int | None) -> tuple[Facility, Scenario]:
    with exit_on_error():
        facility = load_facility(layout)
        scenario = load_scenario(scenario_path) if scenario_path else Scenario()
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    return facility, scenario


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # Alembic announces each of its plugins at INFO on every start; the migrations it runs stay.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@layout_app.command("check")
def layout_check(
    path: Annotated[Path, typer.Argument(help="Facility layout YAML.")] = DEFAULT_LAYOUT,
    lpe: Annotated[
        Path, typer.Option(help="LPE model folder whose mounting envelope the cameras are checked against.")
    ] = DEFAULT_LPE,
) -> None:
    """Validate a facility layout, summarise its tracks, stations and camera coverage (the views, and
    where the LPE sees a locomotive's side), and warn of cameras mounted outside the LPE's envelope and
    of station stretches where no camera can place an end."""
    from shared.seen import seen_stretches, union, unseen_at_stations

    facility, _ = _load(path, None, None)
    table = Table(title=f"{facility.name} ({facility.site})")
    for column in ("track", "length m", "stations", "cameras", "covered m", "seen m"):
        table.add_column(column)
    unseen = {}
    for tid, track in facility.tracks.items():
        cams = facility.cameras_on_track(tid)
        covered = union([(c.view.start_m, c.view.end_m) for c in cams.values()])
        seen = list(seen_stretches(facility, tid).values())
        unseen[tid] = unseen_at_stations(facility, tid, seen)
        table.add_row(
            tid,
            f"{track.length_m:g}",
            ", ".join(facility.stations_on_track(tid)) or "-",
            str(len(cams)),
            f"{sum(hi - lo for lo, hi in covered):.1f}",
            f"{sum(hi - lo for lo, hi in union(seen)):.1f}",
        )
    console.print(table)
    console.print(f"{len(facility.nodes)} edge nodes, {len(facility.cameras)} cameras: layout is valid.")
    _warn_mountings(facility, lpe)
    for tid, spans in unseen.items():
        if spans:
            where = ", ".join(f"{lo:.1f}–{hi:.1f}" for lo, hi in spans)
            errors.print(
                f"warning: track {tid}: no camera sees a locomotive's side at {where} m of its stations; "
                "an end standing there is reported as beyond every camera's view",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )


def _warn_mountings(facility: Facility, model_dir: Path) -> None:
    """Name each camera mounted outside the LPE's envelope, on stderr; the layout stays valid."""
    from shared.envelope import load_envelope, mounting_warnings

    with exit_on_error():
        envelope = load_envelope(model_dir)
    if envelope is None:
        errors.print(
            f"warning: LPE {model_dir} declares no mounting envelope; mountings not checked", markup=False
        )
        return
    for warning in mounting_warnings(facility, envelope):
        errors.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)


@sim_app.command("frames")
def sim_frames(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the frames.")] = Path("out/frames"),
    layout: LayoutOpt = DEFAULT_LAYOUT,
    scenario: ScenarioOpt = None,
    seed: SeedOpt = None,
    cameras: Annotated[str, typer.Option(help="Comma-separated camera ids.")] = "T1-C2,T2-C3,T3-C3,T4-C1",
    at: Annotated[float, typer.Option(help="Simulation second to show.")] = 49 * 3600.0,
) -> None:
    """Write what some cameras see, by day and by night, plus a contact sheet."""
    facility, scen = _load(layout, scenario, seed)
    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for lighting in (Lighting.DAY, Lighting.NIGHT):
        lit = scen.model_copy(
            update={"conditions": scen.conditions.model_copy(update={"lighting": lighting})}
        )
        world = World(facility, lit)
        for cid in cameras.split(","):
            if cid not in facility.cameras:
                console.print(
                    f"[red]unknown camera {cid!r}; known: {', '.join(sorted(facility.cameras))}[/red]"
                )
                raise typer.Exit(2)
            frame = SimCamera(facility, world, SimUrl(camera_id=cid, realtime=False)).frame_at(at)
            if frame.image is None:  # sim frames renders without the scenario's camera faults
                raise RuntimeError(f"camera {cid} rendered no picture at {at} s")
            path = out / f"{cid}_{lighting.value}.jpg"
            cv2.imwrite(str(path), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            tiles.append(cv2.resize(frame.image, (640, 360), interpolation=cv2.INTER_AREA))
            console.print(f"{path}: {len(frame.extents)} locomotive(s) in view")
    columns = len(tiles) // 2
    sheet = np.vstack([np.hstack(tiles[:columns]), np.hstack(tiles[columns:])])
    cv2.imwrite(str(out / "contact_sheet.jpg"), sheet, [cv2.IMWRITE_JPEG_QUALITY, 88])
    console.print(f"contact sheet: {out / 'contact_sheet.jpg'}")


@sim_app.command("dataset")
def sim_dataset(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder.")],
    frames: Annotated[int, typer.Option(min=1, help="Number of frames.")] = 1000,
    layout: LayoutOpt = DEFAULT_LAYOUT,
    scenario: ScenarioOpt = None,
    seed: SeedOpt = None,
    cameras: Annotated[str | None, typer.Option(help="Comma-separated camera ids (default all).")] = None,
    image_format: Annotated[str, typer.Option("--format", help="jpg or png.")] = "jpg",
) -> None:
    """Render a labelled dataset: frames/ and labels.jsonl with extents, plates and conditions."""
    facility, scen = _load(layout, scenario, seed)
    with Progress(console=console) as progress:
        task = progress.add_task("rendering", total=frames)
        with exit_on_error():
            labels = write_dataset(
                facility,
                scen,
                out,
                frames,
                cameras.split(",") if cameras else None,
                image_format,
                progress=lambda n: progress.advance(task, n),
            )
    console.print(f"{frames} frames, labels in {labels}")


@edge_app.command("run")
def edge_run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Edge node YAML, e.g. examples/edge.yaml.")],
) -> None:
    """Run an edge node: capture, estimate, publish with store-and-forward, until SIGTERM."""
    from edge.cli import run_edge  # OpenVINO loads only for the commands that need it

    with exit_on_error():
        run_edge(config, with_sim())


@edge_app.command("check")
def edge_check(
    config: Annotated[Path, typer.Argument(help="Edge node YAML.")],
) -> None:
    """Validate an edge node's config, layout and model files (exit 2 naming each bad key); starts nothing."""
    from edge.cli import check_edge

    with exit_on_error():
        summary, warnings = check_edge(config, with_sim())
    console.print(summary, soft_wrap=True, highlight=False)
    for warning in warnings:
        errors.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)


@edge_app.command("snapshot")
def edge_snapshot(
    config: Annotated[Path, typer.Option("--config", "-c", help="Edge node YAML.")],
    camera: Annotated[str, typer.Option(help="One of the node's cameras.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JPEG to write.")],
) -> None:
    """Write one full-resolution frame of a camera, straight from its source (for calibrating it)."""
    from edge.config import load_edge_config
    from edge.snapshot import full_resolution_jpeg, take_snapshot

    with exit_on_error():
        node, facility = load_edge_config(config)
        frame = take_snapshot(node, facility, camera, with_sim())
        jpeg = full_resolution_jpeg(frame)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(jpeg)
    except OSError as exc:
        errors.print(f"cannot write {out}: {exc}", markup=False)
        raise typer.Exit(2) from exc
    height, width = frame.shape[:2]
    console.print(f"{out}: camera {camera}, {width}x{height}", highlight=False)


CloudConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Cloud service YAML, e.g. examples/cloud.yaml.")
]


@cloud_app.command("run")
def cloud_run(config: CloudConfigOpt) -> None:
    """Run the cloud service: MQTT ingest, state estimation, database and REST API."""
    from cloud.cli import run_cloud

    with exit_on_error():
        run_cloud(config)


@cloud_app.command("recognise")
def cloud_recognise(config: CloudConfigOpt) -> None:
    """Run a recognition worker: series and number of the locomotives in the edge nodes' thumbnails."""
    from cloud.cli import run_recognition

    with exit_on_error():
        run_recognition(config)


@cloud_app.command("opcua-certificate")
def cloud_opcua_certificate(
    out: Annotated[Path, typer.Option(help="Folder to write <name>.der and <name>.key.pem into.")],
    host: Annotated[str, typer.Option(help="The host name clients reach the server by.")] = "localhost",
    uri: Annotated[
        str, typer.Option(help="Application URI, as opcua.application_uri.")
    ] = "urn:depotwatch:cloud",
    name: Annotated[str, typer.Option(help="File name of the pair.")] = "opcua-server",
    client: Annotated[bool, typer.Option(help="A client's certificate (to put in trusted_clients).")] = False,
    force: Annotated[bool, typer.Option(help="Replace a pair already there.")] = False,
) -> None:
    """Make a self-signed OPC UA application certificate and its key (opcua.certificate_file and
    opcua.private_key_file of the cloud's config, or a client's)."""
    from cloud.opcua_certificates import write_certificate

    try:
        cert, key = write_certificate(out, name, uri, host, "client" if client else "server", force)
    except FileExistsError as exc:
        errors.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    console.print(f"certificate {cert}, private key {key}")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")],
    config: CloudConfigOpt,
    name: Annotated[str, typer.Option(help="Who the key is for.")] = "",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from cloud.auth import Role
    from cloud.cli import new_key

    if role not in {r.value for r in Role}:
        console.print(f"[red]role must be viewer, operator or admin, not {role!r}[/red]")
        raise typer.Exit(2)
    with exit_on_error():
        key = new_key(config, Role(role), name)
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key, or its first 12 characters.")],
    config: CloudConfigOpt,
) -> None:
    """Revoke an API key."""
    from cloud.cli import drop_key

    with exit_on_error():
        found = drop_key(config, prefix)
    if not found:
        errors.print(f"no key starts with {prefix[:12]!r}", style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    console.print("revoked")


grafana_app = typer.Typer(help="Grafana dashboards.", no_args_is_help=True)
app.add_typer(grafana_app, name="grafana")


@grafana_app.command("push")
def grafana_push(
    url: Annotated[str, typer.Option(help="Grafana base URL, e.g. http://grafana:3000.")],
    token: Annotated[str, typer.Option(help="Service account token.", envvar="GRAFANA_TOKEN")],
) -> None:
    """Create or overwrite the depotwatch dashboards in an existing Grafana."""
    from cloud.grafana.push import push

    with exit_on_error():
        uids = push(url, token)
    console.print(f"pushed {', '.join(uids)} to {url}")


@grafana_app.command("export")
def grafana_export(
    out: Annotated[Path, typer.Option(help="Folder for the dashboard JSON files.")] = Path(
        "compose/grafana/dashboards"
    ),
) -> None:
    """Write the dashboards as JSON files, for Grafana's provisioning."""
    from cloud.grafana.push import export

    for path in export(out):
        console.print(str(path))


@app.command("demo")
def demo(
    layout: LayoutOpt = DEFAULT_LAYOUT,
    nodes: Annotated[int | None, typer.Option(help="Run only the first N edge nodes.")] = None,
    cameras_per_node: Annotated[
        int | None, typer.Option(help="Only the first N cameras of each node (the rest report disabled).")
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulation seconds per wall second.")] = 10.0,
    sim_start: Annotated[
        float | None, typer.Option(help="Simulation second to start at (default: shortly before a move).")
    ] = None,
    sample_fps: Annotated[float, typer.Option(help="Frames per second each camera feeds the LPE.")] = 1.0,
    broker_url: Annotated[
        str | None, typer.Option(help="Use this broker (mqtt://host:port) instead of starting one.")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Use this database (e.g. postgresql+psycopg://...) instead of SQLite.")
    ] = None,
    port: Annotated[int, typer.Option(help="HTTP port of the map and the API.")] = 8000,
    workdir: Annotated[Path, typer.Option(help="Configs, logs, spools, SQLite (emptied at start).")] = Path(
        "var/demo"
    ),
) -> None:
    """Run a whole depot here: broker, cloud service and edge nodes on simulated cameras; Ctrl-C stops it."""
    import signal
    import threading

    from depotwatch.demo import Demo, DemoOptions

    options = DemoOptions(
        layout=layout,
        workdir=workdir,
        nodes=nodes,
        cameras_per_node=cameras_per_node,
        speed=speed,
        sim_start_s=sim_start,
        sample_fps=sample_fps,
        broker_url=broker_url,
        database_url=database_url,
        port=port,
    )
    with exit_on_error():
        runner = Demo(options)
        urls = runner.start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(
        f"\n[bold]depotwatch demo[/bold]: {len(runner.nodes)} edge node(s) of {runner.facility.name}\n"
        f"  live map      {urls.map}\n"
        f"  API docs      {urls.docs}\n"
        f"  viewer key    {urls.viewer_key}\n"
        f"  admin key     {urls.admin_key}\n"
        f"  broker        {urls.broker}\n"
        f"  logs          {workdir}/*.log\n"
        "The map fills in once the nodes have started (about half a minute). Ctrl-C stops everything.\n",
        soft_wrap=True,
    )
    try:
        runner.supervise(stop)
    finally:
        runner.stop()


if __name__ == "__main__":
    app()
