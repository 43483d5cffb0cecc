"""The edge_node role run for real against this machine (connection local, into a temporary prefix,
the node under the role's supervised restart loop instead of systemd): the node it installs publishes
over TLS with its own password to a Mosquitto enforcing the ACL playbook's files; a second run changes
nothing; a release that fails its health check is rolled back, and a config change that does gets the
files it replaced back; a rollback returns to the previous release. Each release is a real virtualenv
installed from a wheel of this repo (about 40 s each)."""

from __future__ import annotations

import json
import queue
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from depotwatch.embedded_broker import free_port
from depotwatch.promotion.edge_flows import ShadowModel, load_flows, promote, rollback
from shared.messages import Detection
from shared.topics import TopicKind, subscription
from tests.conftest import EXAMPLE_LAYOUT, REPO
from tests.deployment import (
    ANSIBLE,
    MOSQUITTO,
    OPENSSL,
    make_tls,
    mosquitto,
    run_playbook,
    write_mosquitto_users,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.deployment,
    pytest.mark.skipif(
        MOSQUITTO is None or OPENSSL is None,
        reason="needs mosquitto and openssl (sudo make system-deps installs them)",
    ),
]
NODE = "edge-bay1"
Completed = subprocess.CompletedProcess[str]
SITE = "depot-north"


@dataclass
class Box:
    """One edge box on this machine, the broker it talks to, and the wheels to roll out."""

    root: Path
    port: int
    passwords: dict[str, str]
    good: Path
    other_good: Path
    broken: Path
    health_port: int

    @property
    def prefix(self) -> Path:
        return self.root / "opt"

    def deploy(
        self, wheel: Path, flows: Path | None = None, **extra: object
    ) -> subprocess.CompletedProcess[str]:
        inventory = self.root / "inventory.yml"
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "edge_node_id": NODE,
        }
        inventory.write_text(yaml.safe_dump({"edge_nodes": {"hosts": {"localhost": host}}}))
        variables = {
            "facility_layout": str(EXAMPLE_LAYOUT),
            "depotwatch_wheel": str(wheel),
            "mqtt_passwords": self.passwords,
            "edge_become": False,
            "edge_node_prefix": str(self.prefix),
            "edge_node_etc_dir": str(self.root / "etc"),
            "edge_node_state_dir": str(self.root / "var"),
            "edge_node_manage_user": False,  # no system user on the test machine: run as this user
            "edge_node_user": "root",
            "edge_node_group": "root",
            "edge_node_service_manager": "supervised",
            "edge_node_broker_url": f"mqtts://localhost:{self.port}",
            "edge_node_mqtt_ca_file": str(self.root / "tls" / "ca.crt"),
            "edge_node_metrics_port": self.health_port,
            "edge_node_pip_extra_args": "--no-compile",
            "edge_node_health_retries": 20,
            "edge_node_health_delay_s": 1,
            **extra,
        }
        more = ["-e", f"@{flows}"] if flows else []
        return run_playbook("edge.yml", self.root / "vars.yml", variables, "-i", str(inventory), *more)

    def release(self, link: str) -> str:
        return (self.prefix / link).resolve().name

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5) as reply:
            return dict(json.load(reply))


def _inventory(path: Path, node_id: str) -> Path:
    """This machine as the one edge box of the `edge_nodes` group."""
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "edge_node_id": node_id,
    }
    path.write_text(yaml.safe_dump({"edge_nodes": {"hosts": {"localhost": host}}}))
    return path


def _changed(result: subprocess.CompletedProcess[str]) -> int:
    match = re.search(r"localhost\s*:.*changed=(\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return int(match.group(1))


def _wheels(out: Path) -> tuple[Path, Path, Path]:
    """This repo's wheel; the same bytes repacked (another release, same code); and a release whose
    node dies at start (its config check still passes, so only the health gate can catch it)."""
    wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."]
    subprocess.run(wheel, cwd=REPO, check=True, capture_output=True)
    good = next(out.glob("depotwatch-*.whl"))
    variants = []
    for name, patch in (("repacked", False), ("broken", True)):
        target = out / name / good.name
        target.parent.mkdir()
        with zipfile.ZipFile(good) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dest:
            for info in source.infolist():
                data = source.read(info)
                if patch and info.filename == "edge/cli.py":
                    docstring = b'    """Load the config (failing at start'
                    data = data.replace(
                        docstring, b'    raise RuntimeError("a broken release")\n' + docstring
                    )
                    assert b"broken" in data
                info.date_time = (2026, 1, 1, 0, 0, 0)
                dest.writestr(info, data)
        variants.append(target)
    return good, variants[0], variants[1]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    root = tmp_path_factory.mktemp("edge-box")
    tls = root / "tls"
    tls.mkdir()
    passwords = {
        user: uuid.uuid4().hex for user in ["cloud", "recognition"] + [f"edge-bay{n}" for n in range(1, 5)]
    }
    written = write_mosquitto_users(tls, passwords)
    assert written.returncode == 0, written.stdout
    make_tls(tls)
    wheels = root / "wheels"
    wheels.mkdir()
    with mosquitto(tls, tls=True) as port:
        site = Box(root, port, passwords, *_wheels(wheels), health_port=free_port())
        yield site
        supervisor = root / "etc" / "depotwatch-edge-supervise"
        if supervisor.exists():
            subprocess.run([str(supervisor), "stop"], check=False, capture_output=True)


def _next_detection(box: Box, timeout: float = 60) -> Detection:
    """The next detection of the node, read as the cloud user over TLS."""
    received: queue.Queue[Detection] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cloud-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("cloud", box.passwords["cloud"])
    client.tls_set(ca_certs=str(box.root / "tls" / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = lambda _c, _u, message: received.put(Detection.model_validate_json(message.payload))
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(
        subscription(TopicKind.DETECTION, SITE, node=NODE), qos=1
    )
    client.connect("localhost", box.port)
    client.loop_start()
    try:
        return received.get(timeout=timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_installed_node_publishes_over_tls_and_a_second_run_changes_nothing(box: Box) -> None:
    first = box.deploy(box.good)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _changed(first) > 0
    health = box.health()
    assert health["mqtt_connected"] and health["node_id"] == NODE
    assert sorted(health["cameras"]) == ["T1-C1", "T1-C2", "T1-C3", "T1-C4"]  # type: ignore[call-overload]
    detection = _next_detection(box)
    assert detection.node_id == NODE and detection.camera_id.startswith("T1-")
    assert (box.root / "etc" / "edge.env").stat().st_mode & 0o077 == 0o040  # the password: group read only

    second = box.deploy(box.good)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _changed(second) == 0, second.stdout


def test_a_release_failing_its_health_check_is_rolled_back_and_stops_the_rollout(box: Box) -> None:
    assert box.deploy(box.good).returncode == 0
    running = box.release("current")

    result = box.deploy(box.broken)
    assert result.returncode != 0
    assert "did not come up healthy" in result.stdout and f"rolled back to {running}" in result.stdout
    assert box.release("current") == running
    assert box.health()["mqtt_connected"]
    assert _next_detection(box).node_id == NODE


def test_a_config_change_leaving_the_node_unhealthy_is_put_back(box: Box) -> None:
    assert box.deploy(box.good).returncode == 0
    etc = box.root / "etc"
    config = (etc / "edge.yaml").read_text()
    running = box.release("current")

    # A valid config (its check passes) naming a broker nobody listens on: only the health gate sees it.
    result = box.deploy(box.good, edge_node_broker_url=f"mqtts://localhost:{free_port()}")
    assert result.returncode != 0
    assert "did not come up healthy" in result.stdout and "put back edge.yaml" in result.stdout
    assert "rolled back to" not in result.stdout  # the release stayed the same
    assert (etc / "edge.yaml").read_text() == config and box.release("current") == running
    assert not [p.name for p in etc.iterdir() if p.name.endswith("~")]  # no backups left behind
    assert box.health()["mqtt_connected"]
    assert _next_detection(box).node_id == NODE


def test_rollback_returns_to_the_previous_release_and_its_config(box: Box) -> None:
    assert box.deploy(box.good).returncode == 0
    first = box.release("current")
    config = (box.root / "etc" / "edge.yaml").read_text()
    upgrade = box.deploy(box.other_good, edge_node_config={"capture": {"defaults": {"sample_fps": 1}}})
    assert upgrade.returncode == 0, upgrade.stdout
    second = box.release("current")
    assert second != first and box.release("previous") == first
    assert (box.root / "etc" / "edge.yaml").read_text() != config

    back = box.deploy(box.other_good, edge_node_rollback=True)
    assert back.returncode == 0, back.stdout
    assert (box.release("current"), box.release("previous")) == (first, second)
    assert (box.root / "etc" / "edge.yaml").read_text() == config  # what the first release ran with
    assert box.health()["mqtt_connected"]


def _models_seen(box: Box, seconds: float = 12) -> dict[str, set[str]]:
    """The model versions the node's detections of each flow named, over `seconds`."""
    seen: dict[str, set[str]] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cloud-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("cloud", box.passwords["cloud"])
    client.tls_set(ca_certs=str(box.root / "tls" / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        detection = Detection.model_validate_json(message.payload)
        seen.setdefault(detection.flow, set()).add(detection.model.version)

    client.on_message = on_message
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(
        subscription(TopicKind.DETECTION, SITE, node=NODE), qos=1
    )
    client.connect("localhost", box.port)
    client.loop_start()
    time.sleep(seconds)
    client.disconnect()
    client.loop_stop()
    return seen


def test_promoting_a_shadow_flow_rolls_its_model_out_as_prod_and_rollback_brings_it_back(box: Box) -> None:
    flows = box.root / "flows.yml"
    flows.write_text((ANSIBLE / "flows.yml").read_text())
    start = load_flows(flows).model_copy(
        update={"edge_node_shadow_flows": {"dev": ShadowModel(lpe_version="1.0.0", lpe_precision="fp32")}}
    )
    flows.write_text(yaml.safe_dump(start.model_dump(mode="json")))
    assert box.deploy(box.good, flows).returncode == 0
    assert _models_seen(box) == {"prod": {"2.0.0-int8"}, "dev": {"1.0.0-fp32"}}

    promote("dev", flows, REPO / "ir_models")
    promoted = box.deploy(box.good, flows)
    assert promoted.returncode == 0, promoted.stdout
    assert _models_seen(box) == {"prod": {"1.0.0-fp32"}}

    rollback(flows)
    back = box.deploy(box.good, flows)
    assert back.returncode == 0, back.stdout
    assert _models_seen(box) == {"prod": {"2.0.0-int8"}, "dev": {"1.0.0-fp32"}}


def test_a_node_missing_from_the_layout_stops_the_play_naming_it(box: Box) -> None:
    inventory = box.root / "bad-inventory.yml"
    host = {
        "ansible_connection": "local",
        "edge_node_id": "edge-bay9",
        "ansible_python_interpreter": sys.executable,
    }
    inventory.write_text(yaml.safe_dump({"edge_nodes": {"hosts": {"localhost": host}}}))
    variables = {
        "facility_layout": str(EXAMPLE_LAYOUT),
        "depotwatch_wheel": str(box.good),
        "edge_become": False,
    }
    result = run_playbook("edge.yml", box.root / "bad-vars.yml", variables, "-i", str(inventory))
    assert result.returncode != 0 and "node edge-bay9 has cameras []" in result.stdout


def test_the_example_inventory_matches_the_example_layout() -> None:
    inventory = yaml.safe_load((ANSIBLE / "inventory.example.yml").read_text())
    layout = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    hosts = inventory["all"]["children"]["edge_nodes"]["hosts"]
    listed = {host["edge_node_id"]: sorted(host["edge_node_cameras"]) for host in hosts.values()}
    expected: dict[str, list[str]] = {node: [] for node in layout["nodes"]}
    for camera_id, camera in layout["cameras"].items():
        expected[camera["node"]].append(camera_id)
    assert listed == {node: sorted(cameras) for node, cameras in expected.items()}


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="needs systemd-analyze (sudo make system-deps installs systemd)",
)
def test_the_systemd_unit_is_valid(tmp_path: Path) -> None:
    unit = tmp_path / "depotwatch-edge.service"
    variables = {
        "edge_node_id": NODE,
        "edge_node_user": "root",
        "edge_node_group": "root",
        "edge_node_prefix": str(tmp_path),
        "edge_node_etc_dir": str(tmp_path),
        "edge_node_state_dir": str(tmp_path),
    }
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
    program = tmp_path / "current" / "venv" / "bin" / "depotwatch"  # verify checks that ExecStart exists
    program.parent.mkdir(parents=True)
    program.symlink_to("/bin/true")
    template = ANSIBLE / "roles" / "edge_node" / "templates" / "depotwatch-edge.service.j2"
    rendered = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local",
         "-m", "ansible.builtin.template", "-a", f"src={template} dest={unit}",
         "-e", f"@{tmp_path / 'vars.yml'}", "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, check=False, env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    assert "Restart=on-failure" in unit.read_text()
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
