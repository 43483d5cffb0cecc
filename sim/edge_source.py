"""The simulator as an edge node's frame source: the opener for `sim://<camera id>` URLs that the
composition root (`depotwatch edge run`, the tests) registers with a node, which itself never imports
the simulator. All of a node's simulated cameras show one world, built from the config's `sim`."""

from __future__ import annotations

import time

from edge.capture import FrameSource
from edge.config import EdgeConfig, sim_epoch
from edge.sources import VIDEO_SOURCES, OpenerFactory, SourceOpener, SourceRegistry
from shared.layout import Facility
from sim.scenario import Scenario, load_scenario
from sim.source import SIM_SCHEME, SimCamera, parse_sim_url
from sim.world import World


def sim_opener(config: EdgeConfig, facility: Facility) -> SourceOpener:
    """Load the scenario (raising on a bad file, at start) and plan its world; the opener plays it."""
    sim = config.sim
    scenario = load_scenario(sim.scenario) if sim.scenario else Scenario()
    if sim.seed is not None:
        scenario = scenario.model_copy(update={"seed": sim.seed})
    world = World(facility, scenario)
    # Simulation second 0 at a wall time shared by the node's cameras (and by nodes given one).
    epoch = sim_epoch(config) or time.time()

    def open_source(_camera_id: str, url: str) -> FrameSource:
        parsed = parse_sim_url(url)
        if "speed" not in parsed.model_fields_set:
            parsed = parsed.model_copy(update={"speed": sim.speed})
        return SimCamera(facility, world, parsed, epoch=epoch)

    return open_source


def with_sim(sources: SourceRegistry = VIDEO_SOURCES) -> dict[str, OpenerFactory]:
    """`sources` and the simulator's opener for sim:// URLs."""
    return {**sources, SIM_SCHEME: sim_opener}
