"""The OPC UA server as a SCADA sees it, through asyncua's client: a Basic256Sha256 SignAndEncrypt
session with a trusted client certificate browses Depot/Tracks and Stations, subscribes to values that
follow a locomotive's arrival, and cannot write; an untrusted certificate and an unsecured session are
refused."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from pydantic import ValidationError

from cloud.auth import Role, create_key
from cloud.config import CloudConfig, OpcUaConfig, load_cloud_config
from cloud.depot_view import DepotView
from cloud.opcua_certificates import write_certificate
from cloud.opcua_server import OpcUaServer, namespace_uri
from depotwatch.embedded_broker import free_port
from shared.errors import ConfigError, Unavailable
from shared.layout import Facility
from tests.cloud.servers import Server
from tests.cloud.test_reliability import Edge
from tests.conftest import EXAMPLE_LAYOUT, DatabaseFactory
from tests.waiting import wait_until

SCADA_URI = "urn:depot:scada"


class Changes:
    """A subscription's handler: every value each node was told, in order."""

    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {}

    def datachange_notification(self, node: Any, value: Any, _: Any) -> None:
        self.values.setdefault(node.nodeid.Identifier, []).append(value)


async def _secure_client(url: str, cert: Path, key: Path) -> Client:
    client = Client(url, timeout=10)
    client.application_uri = SCADA_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt
    )
    return client


def test_a_scada_browses_subscribes_and_cannot_write_and_strangers_are_refused(
    database_factory: DatabaseFactory,
    mqtt_url: str,
    facility: Facility,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_cert, server_key = write_certificate(
        tmp_path / "server", "server", "urn:depotwatch:cloud", "localhost"
    )
    client_cert, client_key = write_certificate(tmp_path / "scada", "scada", SCADA_URI, "localhost", "client")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(client_cert, trusted)
    stranger_cert, stranger_key = write_certificate(
        tmp_path / "other", "stranger", SCADA_URI, "localhost", "client"
    )
    url = f"opc.tcp://127.0.0.1:{free_port()}/depotwatch"
    opcua = OpcUaConfig(
        enabled=True,
        endpoint=url,
        certificate_file=server_cert,
        private_key_file=server_key,
        trusted_clients=trusted,
        update_interval_s=0.2,
    )
    server = Server(database_factory(), mqtt_url, facility, opcua=opcua)
    edge = Edge(mqtt_url, facility)
    try:
        viewer = create_key(server.service.engine, Role.VIEWER)
        api_loco = asyncio.run(_scada_session(url, client_cert, client_key, facility, edge, server, viewer))
        assert api_loco is not None

        async def connect(client: Client) -> None:
            async with client:
                pass

        with pytest.raises(Exception, match=r"(?i)bad|security|certificate|refused|closed"):
            asyncio.run(connect(asyncio.run(_secure_client(url, stranger_cert, stranger_key))))
        with pytest.raises(Exception, match=r"(?i)endpoint|security|bad|policy"):
            asyncio.run(connect(Client(url, timeout=5)))
        # A client that does not check the endpoints (asyncua's does, before the server has a say)
        # gets an unsecured channel, but no session on it.
        with monkeypatch.context() as patched:
            patched.setattr(Client, "find_endpoint", staticmethod(lambda endpoints, *_: endpoints[0]))
            with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
                asyncio.run(connect(Client(url, timeout=5)))
        # Nor is anyone an administrator by name (who could write and add nodes).
        admin = asyncio.run(_secure_client(url, client_cert, client_key))
        admin.set_user("admin")
        admin.set_password("anything")
        with pytest.raises(Exception, match=r"(?i)identity|token|user|bad"):
            asyncio.run(connect(admin))
        assert server.call("/healthz")[0] == 200
    finally:
        edge.stop()
        server.stop()


async def _scada_session(
    url: str, cert: Path, key: Path, facility: Facility, edge: Edge, server: Server, viewer: str
) -> dict[str, Any]:
    client = await _secure_client(url, cert, key)
    async with client:
        idx = await client.get_namespace_index(namespace_uri(facility.site))

        async def node(*path: str) -> Any:
            return await client.nodes.objects.get_child([f"{idx}:{p}" for p in ("Depot", *path)])

        tracks = await (await node("Tracks")).get_children()
        assert sorted([(await t.read_browse_name()).Name for t in tracks]) == sorted(facility.tracks)
        stations = await (await node("Stations")).get_children()
        assert sorted([(await s.read_browse_name()).Name for s in stations]) == sorted(facility.stations)
        count = await node("Tracks", "T2", "LocomotiveCount")
        occupant = await node("Stations", "T2-A", "OccupiedBy")
        assert await count.read_value() == 0 and await occupant.read_value() == ""

        changes = Changes()
        subscription = await client.create_subscription(100, changes)
        await subscription.subscribe_data_change([count, occupant])

        def arrive() -> None:  # seen long enough (confirm_s) to be a locomotive
            until = time.monotonic() + 4.0
            while time.monotonic() < until:
                edge.see("T2-C2", (20.0, 26.0))
                time.sleep(0.2)

        await asyncio.to_thread(arrive)
        for _ in range(100):
            if 1 in changes.values.get("Depot.Tracks.T2.LocomotiveCount", []):
                break
            await asyncio.sleep(0.1)
        [loco] = wait_until(
            lambda: [lo for t in server.call("/api/state", viewer)[1]["tracks"] for lo in t["locos"]],
            5,
            "the locomotive in the API",
        )
        assert changes.values["Depot.Tracks.T2.LocomotiveCount"] == [0, 1]
        assert changes.values["Depot.Stations.T2-A.OccupiedBy"] == ["", loco["loco_id"]]

        [shown] = await (await node("Tracks", "T2", "Locomotives")).get_children()
        assert (await shown.read_browse_name()).Name == loco["loco_id"]
        values = {(await v.read_browse_name()).Name: await v.read_value() for v in await shown.get_children()}
        assert values["TailM"] == pytest.approx(loco["start_m"], abs=0.3)
        assert values["HeadM"] == pytest.approx(loco["end_m"], abs=0.3)
        assert (values["Station"], values["State"], values["Number"]) == ("T2-A", "standing", "")
        assert await (await node("Tracks", "T2", "Occupied")).read_value() is True

        head = await node("Tracks", "T2", "Locomotives", loco["loco_id"], "HeadM")
        with pytest.raises(ua.UaStatusCodeError):
            await head.write_value(ua.DataValue(ua.Variant(99.0, ua.VariantType.Double)))
        assert await head.read_value() == pytest.approx(loco["end_m"], abs=0.3)

        def leave() -> None:  # the camera sees its stretch free again
            until = time.monotonic() + 10.0
            while time.monotonic() < until and 0 not in changes.values["Depot.Tracks.T2.LocomotiveCount"][1:]:
                edge.see("T2-C2")
                time.sleep(0.2)

        await asyncio.to_thread(leave)
        await asyncio.sleep(0.5)
        assert changes.values["Depot.Tracks.T2.LocomotiveCount"] == [0, 1, 0]
        assert changes.values["Depot.Stations.T2-A.OccupiedBy"] == ["", loco["loco_id"], ""]
        assert await (await node("Tracks", "T2", "Locomotives")).get_children() == []
        await subscription.delete()
        return loco


def test_a_secured_server_without_its_files_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="certificate_file is needed with security basic256sha256"):
        CloudConfig(layout=EXAMPLE_LAYOUT, opcua={"enabled": True})
    with pytest.raises(ValidationError, match=re.escape("is not opc.tcp://host:port/path")):
        OpcUaConfig(endpoint="http://0.0.0.0:4840")
    config = tmp_path / "cloud.yaml"
    config.write_text(
        f"layout: {EXAMPLE_LAYOUT}\nopcua:\n  enabled: true\n  certificate_file: {tmp_path}/none.der\n"
        f"  private_key_file: {tmp_path}/none.pem\n  trusted_clients: {tmp_path}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_cloud_config(config)
    assert [issue.key for issue in caught.value.issues] == [
        "opcua.certificate_file",
        "opcua.private_key_file",
    ]


def test_with_security_none_an_anonymous_client_reads_the_depot(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility
) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/depotwatch"
    opcua = OpcUaConfig(enabled=True, endpoint=url, security="none", update_interval_s=0.2)
    server = Server(database_factory(), mqtt_url, facility, opcua=opcua)

    async def read() -> tuple[list[str], str]:
        async with Client(url, timeout=5) as client:
            idx = await client.get_namespace_index(namespace_uri(facility.site))
            stations = await client.nodes.objects.get_child([f"{idx}:Depot", f"{idx}:Stations"])
            names = [(await s.read_browse_name()).Name for s in await stations.get_children()]
            track = await client.nodes.objects.get_child(
                [f"{idx}:Depot", f"{idx}:Stations", f"{idx}:T1-A", f"{idx}:Track"]
            )
            return names, await track.read_value()

    try:
        names, track = asyncio.run(read())
        assert sorted(names) == sorted(facility.stations) and track == "T1"
    finally:
        server.stop()


@pytest.mark.parametrize("broken", ["certificate_file", "private_key_file", "trusted_clients"])
def test_a_file_the_server_cannot_use_is_named_at_start(
    facility: Facility, tmp_path: Path, broken: str
) -> None:
    cert, key = write_certificate(tmp_path / "server", "server", "urn:depotwatch:cloud", "localhost")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(write_certificate(tmp_path / "scada", "scada", SCADA_URI, "localhost", "client")[0], trusted)
    files = {"certificate_file": cert, "private_key_file": key, "trusted_clients": trusted}
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "not-a-certificate.der").write_bytes(b"not a certificate")
    files[broken] = garbage / "not-a-certificate.der" if broken != "trusted_clients" else garbage
    config = OpcUaConfig(enabled=True, endpoint=f"opc.tcp://127.0.0.1:{free_port()}/depotwatch", **files)
    server = OpcUaServer(config, lambda: DepotView(facility, []))
    with pytest.raises(Unavailable, match=rf"^opcua\.{broken}: cannot be read"):
        server.start()
    server.stop()


def test_a_certificate_pair_is_kept_unless_replaced_and_its_key_is_the_owners_only(tmp_path: Path) -> None:
    cert, key = write_certificate(tmp_path, "server", "urn:depotwatch:cloud", "localhost")
    first = cert.read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        write_certificate(tmp_path, "server", "urn:depotwatch:cloud", "localhost")
    assert cert.read_bytes() == first
    key.chmod(0o644)
    write_certificate(tmp_path, "server", "urn:depotwatch:cloud", "localhost", overwrite=True)
    assert cert.read_bytes() != first and key.stat().st_mode & 0o777 == 0o600
