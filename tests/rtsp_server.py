"""A GStreamer RTSP server for tests, run with Debian's python3 (which has the gi bindings):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --mount /cam clip.mp4

Serves an H.264 MP4 file as rtsp://127.0.0.1:PORT/MOUNT until killed.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mount", default="/cam")
parser.add_argument("file")
args = parser.parse_args()

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(str(args.port))
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={args.file} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory(args.mount, factory)
server.attach(None)
sys.stdout.write(f"serving rtsp://127.0.0.1:{args.port}{args.mount}\n")
sys.stdout.flush()
GLib.MainLoop().run()
