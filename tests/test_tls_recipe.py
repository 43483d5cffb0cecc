"""The broker TLS recipe of docs/deploy.md, run as written: the certificates it makes let every shipped
client in under the name that client uses for the broker (the compose services' `mosquitto`, the edge
boxes' name from the Ansible inventory), hostname verification on, and a name they do not carry is
refused.

The commands come from the document itself (its one shell block that runs `openssl`), so the document
and this test cannot drift apart; the broker is a private Mosquitto with the shipped config's TLS
lines. The broker's names do not resolve here, so this process answers them with 127.0.0.1, as compose's
DNS or an edge box's resolver would answer with the broker's address: what TLS checks, the name the
client asked for against the certificate's subjectAltName, is the real one."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.mqtt import BrokerConfig, MqttConnection
from tests.brokers import PrivateMosquitto
from tests.conftest import REPO

DEPLOY_DOC = REPO / "docs" / "deploy.md"
COMPOSE = REPO / "compose"
ANSIBLE = REPO / "ansible"
OPENSSL = shutil.which("openssl")
# Written per site (.gitignore): a developer's own are never copied into the scratch checkout.
SITE_FILES = (".env", "tls", "passwd", "passwd.plain", "acl")
# A name no shipped client uses for the broker, so the certificate must not be good for it.
STRAY_NAME = "broker.elsewhere.example"
CLOUD_BROKER_ENV = "DEPOTWATCH_CLOUD_BROKER__"
COMPOSE_SECRET = re.compile(r"\$\{[A-Z_]+:\?[^}]*\}")
# Generous for a loaded CI machine; a good connect takes milliseconds.
CONNECT_S = 10.0
# How long a client with the wrong name is given to (wrongly) get in: paho tries at once.
REFUSED_S = 2.0

pytestmark = pytest.mark.skipif(
    OPENSSL is None or shutil.which("mosquitto") is None,
    reason="needs openssl and mosquitto (sudo make system-deps installs them)",
)


@dataclass(frozen=True)
class ShippedClient:
    """A client of the broker with the settings a shipped config gives it."""

    where: str
    broker: BrokerConfig


def tls_recipe() -> str:
    """The one fenced shell block of docs/deploy.md that runs openssl."""
    blocks = re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", DEPLOY_DOC.read_text(), re.MULTILINE | re.DOTALL)
    recipes = [block for block in blocks if re.search(r"^\s*openssl ", block, re.MULTILINE)]
    assert len(recipes) == 1, f"docs/deploy.md has {len(recipes)} shell blocks running openssl, not one"
    return str(recipes[0])


def _compose_services() -> dict[str, dict[str, Any]]:
    services = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]
    assert isinstance(services, dict)
    return services


def _on_host(container_path: str, service: dict[str, Any], compose_dir: Path) -> Path:
    """Where a path inside a compose service's container comes from in `compose_dir` (its bind mounts)."""
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith(".") and (container_path == target or container_path.startswith(f"{target}/")):
            return compose_dir / source / container_path.removeprefix(target).lstrip("/")
    raise AssertionError(f"compose mounts nothing from the repository at {container_path}")


def compose_clients(compose_dir: Path) -> list[ShippedClient]:
    """Each compose service's broker settings, as its environment gives them to the cloud config."""
    clients = []
    for name, service in _compose_services().items():
        fields = {
            key.removeprefix(CLOUD_BROKER_ENV).lower(): COMPOSE_SECRET.sub("s3cret-value", str(value))
            for key, value in service.get("environment", {}).items()
            if key.startswith(CLOUD_BROKER_ENV)
        }
        if not fields:
            continue
        if "ca_file" in fields:
            fields["ca_file"] = str(_on_host(fields["ca_file"], service, compose_dir))
        clients.append(ShippedClient(f"compose service {name}", BrokerConfig.model_validate(fields)))
    return clients


def edge_clients(root: Path) -> list[ShippedClient]:
    """The edge boxes' broker settings from the example inventory and the role's defaults, as
    ansible/roles/edge_node/templates/edge.yaml.j2 writes them (the CA is a copy of the inventory's)."""
    inventory = yaml.safe_load((ANSIBLE / "inventory.example.yml").read_text())["all"]["vars"]
    defaults = yaml.safe_load((ANSIBLE / "roles" / "edge_node" / "defaults" / "main.yml").read_text())
    ca_file = Path(str(inventory["edge_node_mqtt_ca_file"]).replace("{{ inventory_dir }}/..", str(root)))
    return [
        ShippedClient(
            f"edge box ({source})",
            BrokerConfig(url=url, username="edge-bay1", password="s3cret-value", ca_file=ca_file),
        )
        for source, url in (
            ("ansible/inventory.example.yml", inventory["edge_node_broker_url"]),
            ("edge_node role default", defaults["edge_node_broker_url"]),
        )
    ]


def broker_tls_settings(compose_dir: Path) -> str:
    """The shipped mosquitto.conf's TLS lines, with the files compose mounts at their paths."""
    service = _compose_services()["mosquitto"]
    lines = []
    for line in (COMPOSE / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in ("cafile", "certfile", "keyfile"):
            lines.append(f"{key} {_on_host(value, service, compose_dir)}")
        elif key == "require_certificate":
            lines.append(line)
    assert {line.split(" ")[0] for line in lines} >= {"cafile", "certfile", "keyfile"}, lines
    return "".join(f"{line}\n" for line in lines)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch repository root with the recipe run in it (from the root, as the document says)."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(COMPOSE, root / "compose", ignore=shutil.ignore_patterns(*SITE_FILES))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", tls_recipe()],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"the TLS recipe of docs/deploy.md failed:\n{result.stderr}"
    return root


@pytest.fixture(scope="module")
def broker(site: Path) -> Iterator[PrivateMosquitto]:
    """A Mosquitto with the shipped TLS settings and the recipe's files on its listener."""
    mosquitto = PrivateMosquitto(site, broker_tls_settings(site / "compose")).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def resolving(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Names this process's resolver answers with 127.0.0.1 (add to the set); paho resolves through it."""
    names: set[str] = set()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host in names else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def shipped_clients(site: Path) -> list[ShippedClient]:
    """Every client of the broker the shipped configs set up, its CA the recipe's (under `site`)."""
    clients = [*compose_clients(site / "compose"), *edge_clients(site)]
    assert any(c.where.startswith("compose") for c in clients), "no compose service talks to the broker"
    assert all(c.broker.tls and c.broker.ca_file is not None for c in clients), clients
    return clients


def handshake(port: int, name: str, ca_file: Path, *, strict: bool = False) -> str:
    """A TLS handshake with the broker at 127.0.0.1:`port` by a client that asked for `name`, checking
    the name and the chain (`strict`: by RFC 5280's rules, as Python 3.13 does by default); returns the
    TLS version."""
    context = ssl.create_default_context(cafile=ca_file)
    if strict:
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return tls.version() or "?"


def refusal(port: int, name: str, ca_file: Path, *, strict: bool = False) -> str | None:
    """Why a client asking for `name` is refused (None: it is not)."""
    try:
        handshake(port, name, ca_file, strict=strict)
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message)
    return None


def on_port(config: BrokerConfig, host: str, port: int) -> BrokerConfig:
    """The same settings for `host` on the test broker's port."""
    return config.model_copy(update={"url": urlsplit(config.url)._replace(netloc=f"{host}:{port}").geturl()})


def connects(config: BrokerConfig, timeout: float) -> bool:
    """Whether the project's MQTT adapter with `config` gets a successful CONNACK within `timeout`."""
    link = MqttConnection(config, f"tls-recipe-{uuid.uuid4().hex[:8]}")
    link.start()
    try:
        return link.wait_connected(timeout)
    finally:
        link.stop(timeout=1)


def test_the_server_certificate_is_good_for_every_name_the_shipped_clients_use(
    site: Path, broker: PrivateMosquitto
) -> None:
    refused = {
        f"{client.where} as {client.broker.host!r}": refusal(broker.port, client.broker.host, ca_file)
        for client in shipped_clients(site)
        if (ca_file := client.broker.ca_file) is not None
    }
    assert not {who: why for who, why in refused.items() if why}, refused


def test_the_certificates_pass_strict_verification(site: Path, broker: PrivateMosquitto) -> None:
    tls = site / "compose" / "tls"
    assert refusal(broker.port, "mosquitto", tls / "ca.crt", strict=True) is None
    assert OPENSSL is not None
    extensions = subprocess.run(
        [
            OPENSSL,
            "x509",
            "-in",
            str(tls / "server.crt"),
            "-noout",
            "-ext",
            "basicConstraints,extendedKeyUsage",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CA:FALSE" in extensions and "TLS Web Server Authentication" in extensions, extensions


def test_the_shipped_clients_connect_with_the_adapter_under_their_own_names(
    site: Path, broker: PrivateMosquitto, resolving: set[str]
) -> None:
    failed = []
    for client in shipped_clients(site):
        resolving.add(client.broker.host)
        config = on_port(client.broker, client.broker.host, broker.port)
        if not connects(config, CONNECT_S):
            failed.append(f"{client.where} as {config.url}")
    assert not failed, f"could not connect: {failed}"


def test_a_name_the_certificate_does_not_carry_is_refused(
    site: Path, broker: PrivateMosquitto, resolving: set[str]
) -> None:
    client = shipped_clients(site)[0]
    assert client.broker.ca_file is not None
    why = refusal(broker.port, STRAY_NAME, client.broker.ca_file)
    assert why is not None and "Hostname mismatch" in why, why
    resolving.add(STRAY_NAME)
    assert not connects(on_port(client.broker, STRAY_NAME, broker.port), REFUSED_S)
