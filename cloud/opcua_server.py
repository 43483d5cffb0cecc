"""The facility served read-only over OPC UA (asyncua), for the plant's SCADA: an address space

    Objects/Depot/Tracks/<track>              Occupied, LocomotiveCount
    Objects/Depot/Tracks/<track>/Locomotives/<id>
                                              Number, Series, HeadM, TailM, Station, State, Since
    Objects/Depot/Stations/<station>          Track, OccupiedBy, Number, Series, Since

with string node ids of the same path ("Depot.Tracks.T1.Locomotives.L00042.HeadM") in the namespace
`urn:depotwatch:<site>`, so a SCADA binds its tags once. TailM is a locomotive's lower track metre,
HeadM its higher (which end leads is not known); State is standing or moving; Since is when it was first
seen (a locomotive) or taken by its occupant (a station). A value is written only when it changes, and
a client's subscription is told only then; a locomotive's node goes when it departs.

The server runs its asyncio loop in a thread this object owns; each `update_interval_s` it reads the prod
flow's live state (the same the map shows) through the `view` it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from cryptography import x509

from cloud.config import OpcUaConfig
from cloud.depot_view import DepotView, StationNow, StationSince
from shared.errors import Unavailable
from shared.layout import Facility

log = logging.getLogger(__name__)

# How long `start` waits for the server to listen.
START_TIMEOUT_S = 30.0


def namespace_uri(site: str) -> str:
    """The namespace of a site's nodes."""
    return f"urn:depotwatch:{site}"


class OpcUaServer:
    """`start` listens (or raises Unavailable naming the setting at fault); `stop` ends the thread."""

    def __init__(self, config: OpcUaConfig, view: Callable[[], DepotView]) -> None:
        self.config = config
        self._view = view
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="opcua", daemon=True)
        self._values: dict[str, Any] = {}  # node id -> the value last written
        self._locos: dict[str, Node] = {}  # "<track>.<loco id>" -> its object node
        self._stations = StationSince()
        self._facility: Facility | None = None
        self._depot: Node | None = None
        self._idx = 0  # the site's namespace index

    def start(self) -> None:
        """Listen on the endpoint; raises Unavailable (opcua.endpoint or the file at fault)."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise Unavailable(
                "opcua.endpoint", f"the OPC UA server did not start within {START_TIMEOUT_S:g} s"
            )
        if isinstance(self._error, _Misconfigured):
            raise Unavailable(self._error.setting, self._error.problem)
        if self._error is not None:
            raise Unavailable("opcua.endpoint", f"cannot serve {self.config.endpoint}: {self._error}")
        log.info("OPC UA: serving the facility at %s (%s)", self.config.endpoint, self.config.security)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the server's thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to `start`, or logged once it is serving
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            else:
                log.exception("OPC UA: the server stopped")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await self._server()
        async with server:
            self._started.set()
            while not self._stopping.is_set():
                try:
                    await self._follow(server, self._view())
                except Exception:  # one bad pass must not end the server
                    log.exception("OPC UA: following the state failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.config.update_interval_s)

    async def _server(self) -> Server:
        config = self.config
        secure = config.security != "none"
        # asyncua accepts an unsecured channel even when no endpoint offers one, so a session is let in
        # only over a channel whose client certificate the validator trusted; no session is ever an
        # administrator's (one could write and add nodes); and the only identity is the channel's.
        users = _Users()
        server = Server(user_manager=users)
        await server.init()
        server.allow_remote_admin(False)
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        server.set_endpoint(config.endpoint)
        server.set_server_name("depotwatch")
        await server.set_application_uri(config.application_uri)
        if not secure:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            return server
        if not (config.certificate_file and config.private_key_file and config.trusted_clients):
            raise ValueError("certificate_file, private_key_file and trusted_clients are needed")
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        try:
            await server.load_certificate(str(config.certificate_file))
        except Exception as exc:
            raise _Misconfigured("opcua.certificate_file", f"cannot be read: {exc}") from exc
        try:
            await server.load_private_key(str(config.private_key_file))
        except Exception as exc:
            raise _Misconfigured("opcua.private_key_file", f"cannot be read: {exc}") from exc
        trust = TrustStore([config.trusted_clients], [])
        try:
            await trust.load()
        except Exception as exc:
            raise _Misconfigured("opcua.trusted_clients", f"cannot be read: {exc}") from exc
        options = CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        server.set_certificate_validator(CertificateValidator(options, trust))
        users.trust = trust
        return server

    async def _follow(self, server: Server, view: DepotView) -> None:
        """Bring the address space to the view: the layout's nodes (rebuilt when it changed), then
        each locomotive's and station's values."""
        if view.facility is not self._facility:
            await self._build(server, view.facility)
        idx = self._idx
        present: set[str] = set()
        for track in view.tracks:
            base = f"Depot.Tracks.{track.track_id}"
            await self._set(server, f"{base}.Occupied", bool(track.locos), ua.VariantType.Boolean)
            await self._set(server, f"{base}.LocomotiveCount", len(track.locos), ua.VariantType.Int32)
            for loco in track.locos:
                key = f"{track.track_id}.{loco.loco_id}"
                present.add(key)
                node_base = f"{base}.Locomotives.{loco.loco_id}"
                if key not in self._locos:
                    parent = server.get_node(_node_id(f"{base}.Locomotives", idx))
                    self._locos[key] = await self._object(parent, idx, node_base, loco.loco_id)
                    for name, variant in _LOCO_VARIABLES.items():
                        await self._variable(self._locos[key], idx, f"{node_base}.{name}", name, variant)
                await self._set(server, f"{node_base}.Number", loco.number or "", ua.VariantType.String)
                await self._set(server, f"{node_base}.Series", loco.model or "", ua.VariantType.String)
                await self._set(server, f"{node_base}.HeadM", loco.end_m, ua.VariantType.Double)
                await self._set(server, f"{node_base}.TailM", loco.start_m, ua.VariantType.Double)
                await self._set(server, f"{node_base}.Station", loco.station or "", ua.VariantType.String)
                state = "moving" if loco.moving else "standing"
                await self._set(server, f"{node_base}.State", state, ua.VariantType.String)
                await self._set(server, f"{node_base}.Since", loco.first_seen, ua.VariantType.DateTime)
        for key in [k for k in self._locos if k not in present]:
            await server.delete_nodes([self._locos.pop(key)], recursive=True)
            prefix = "Depot.Tracks.{}.Locomotives.{}.".format(*key.split(".", 1))
            self._values = {k: v for k, v in self._values.items() if not k.startswith(prefix)}
        for station in self._stations.stations(view):
            await self._station(server, station)

    async def _station(self, server: Server, station: StationNow) -> None:
        base = f"Depot.Stations.{station.station_id}"
        loco = station.occupant
        await self._set(server, f"{base}.OccupiedBy", loco.loco_id if loco else "", ua.VariantType.String)
        await self._set(
            server, f"{base}.Number", (loco.number if loco else None) or "", ua.VariantType.String
        )
        await self._set(server, f"{base}.Series", (loco.model if loco else None) or "", ua.VariantType.String)
        await self._set(server, f"{base}.Since", station.since, ua.VariantType.DateTime)

    async def _build(self, server: Server, facility: Facility) -> None:
        if self._depot is not None:
            await server.delete_nodes([self._depot], recursive=True)
        self._values, self._locos = {}, {}
        self._stations.forget()
        idx = self._idx = await server.register_namespace(namespace_uri(facility.site))
        depot = await self._object(server.nodes.objects, idx, "Depot", "Depot")
        tracks = await self._object(depot, idx, "Depot.Tracks", "Tracks")
        for track_id in facility.tracks:
            base = f"Depot.Tracks.{track_id}"
            track = await self._object(tracks, idx, base, track_id)
            await self._variable(track, idx, f"{base}.Occupied", "Occupied", ua.VariantType.Boolean)
            await self._variable(
                track, idx, f"{base}.LocomotiveCount", "LocomotiveCount", ua.VariantType.Int32
            )
            await self._object(track, idx, f"{base}.Locomotives", "Locomotives")
        stations = await self._object(depot, idx, "Depot.Stations", "Stations")
        for station_id, station in facility.stations.items():
            base = f"Depot.Stations.{station_id}"
            node = await self._object(stations, idx, base, station_id)
            await self._variable(node, idx, f"{base}.Track", "Track", ua.VariantType.String)
            await self._set(server, f"{base}.Track", station.track, ua.VariantType.String)
            for name, variant in _STATION_VARIABLES.items():
                await self._variable(node, idx, f"{base}.{name}", name, variant)
        self._facility, self._depot = facility, depot

    @staticmethod
    async def _object(parent: Node, idx: int, node_id: str, name: str) -> Node:
        return await parent.add_object(_node_id(node_id, idx), ua.QualifiedName(name, idx))

    @staticmethod
    async def _variable(parent: Node, idx: int, node_id: str, name: str, variant: ua.VariantType) -> Node:
        # Not writable: a client's write is refused (the address space is read-only).
        return await parent.add_variable(
            _node_id(node_id, idx), ua.QualifiedName(name, idx), _EMPTY[variant], variant
        )

    async def _set(self, server: Server, node_id: str, value: Any, variant: ua.VariantType) -> None:
        if self._values.get(node_id, _UNSET) == value:
            return
        await server.write_attribute_value(
            _node_id(node_id, self._idx), ua.DataValue(ua.Variant(value, variant))
        )
        self._values[node_id] = value


class _Misconfigured(Exception):
    """A file the config names cannot be used: which setting, and why."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting, self.problem = setting, problem


class _Users(UserManager):
    """A session's user: a plain one (reads and subscribes; the variables are not writable), never an
    administrator. With a trust store, only a session whose channel carries a client certificate the
    store trusts has one (an unsecured channel carries none), so every other session is refused."""

    def __init__(self) -> None:
        self.trust: TrustStore | None = None

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if self.trust is not None:
            if not certificate:
                return None
            try:
                trusted = self.trust.validate(x509.load_der_x509_certificate(certificate))
            except ValueError:
                return None
            if not trusted:
                return None
        return User(role=UserRole.User)


def _node_id(name: str, idx: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(idx))


_UNSET = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY: dict[ua.VariantType, Any] = {
    ua.VariantType.String: "",
    ua.VariantType.Boolean: False,
    ua.VariantType.Int32: 0,
    ua.VariantType.Double: 0.0,
    ua.VariantType.DateTime: _EPOCH,
}
_LOCO_VARIABLES = {
    "Number": ua.VariantType.String,
    "Series": ua.VariantType.String,
    "HeadM": ua.VariantType.Double,
    "TailM": ua.VariantType.Double,
    "Station": ua.VariantType.String,
    "State": ua.VariantType.String,
    "Since": ua.VariantType.DateTime,
}
_STATION_VARIABLES = {
    "OccupiedBy": ua.VariantType.String,
    "Number": ua.VariantType.String,
    "Series": ua.VariantType.String,
    "Since": ua.VariantType.DateTime,
}
