"""Where a camera's frames come from: a registry of source openers keyed by the URL scheme of the
camera's `source` in the layout. The default one opens video files and network streams through OpenCV;
other kinds (the simulator's `sim://`) are registered by whoever composes the node, so the edge never
imports them. A source no registered opener knows fails at start, naming the camera."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol
from urllib.parse import urlsplit

from edge.capture import FrameSource, open_video
from edge.config import EdgeConfig
from shared.errors import ConfigError, ConfigIssue
from shared.layout import Facility


class SourceOpener(Protocol):
    """Opens one camera's source; the camera's worker calls it at start and on every reconnect."""

    def __call__(self, camera_id: str, url: str, /) -> FrameSource:
        """The camera's source at `url`, open; raises a DepotwatchError when it cannot."""
        ...


class OpenerFactory(Protocol):
    """Builds a node's opener for one URL scheme from its config and layout, once, when the node opens."""

    def __call__(self, config: EdgeConfig, facility: Facility, /) -> SourceOpener:
        """The opener of the node's cameras of this scheme."""
        ...


SourceRegistry = Mapping[str, OpenerFactory]
"""URL scheme (`""` for a plain file path) to the factory of its opener."""


def video_opener(config: EdgeConfig, _facility: Facility) -> SourceOpener:
    """Files and streams through OpenCV's FFmpeg backend, with the node's capture timeouts."""
    capture = config.capture

    def open_source(_camera_id: str, url: str) -> FrameSource:
        return open_video(url, capture.open_timeout_s, capture.pace_files)

    return open_source


# FFmpeg reads all of these; IP cameras speak RTSP, some of them MJPEG over HTTP.
VIDEO_SCHEMES = ("", "file", "rtsp", "rtsps", "http", "https")
VIDEO_SOURCES: SourceRegistry = MappingProxyType(dict.fromkeys(VIDEO_SCHEMES, video_opener))


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case; `""` for a file path."""
    return urlsplit(url).scheme.lower()


def check_sources(config: EdgeConfig, facility: Facility, sources: SourceRegistry) -> None:
    """Raise ConfigError naming each of the node's cameras whose source no registered opener knows."""
    known = ", ".join(f"{s}://" if s else "file paths" for s in sorted(sources))
    issues = [
        ConfigIssue(
            f"cameras.{cid}.source",
            f"camera {cid}: no source opener for {scheme_of(cam.source)}:// URLs here (known: {known})",
        )
        for cid, cam in sorted(facility.cameras_of_node(config.node_id).items())
        if scheme_of(cam.source) not in sources
    ]
    if issues:
        raise ConfigError(str(config.layout), issues)


def camera_openers(
    config: EdgeConfig, facility: Facility, sources: SourceRegistry
) -> dict[str, Callable[[], FrameSource]]:
    """The opener of each of the node's cameras, for its worker; one opener is built per scheme in use
    (the simulator's loads its scenario). Raises ConfigError as `check_sources` does."""
    check_sources(config, facility, sources)
    openers: dict[str, SourceOpener] = {}

    def opener_of(camera_id: str) -> Callable[[], FrameSource]:
        url = facility.cameras[camera_id].source
        scheme = scheme_of(url)
        if scheme not in openers:
            openers[scheme] = sources[scheme](config, facility)
        opener = openers[scheme]
        return lambda: opener(camera_id, url)

    return {cid: opener_of(cid) for cid in sorted(facility.cameras_of_node(config.node_id))}
