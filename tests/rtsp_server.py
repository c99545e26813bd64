"""An RTSP camera for the tests: a video file at rtsp://127.0.0.1:PORT/live, by GStreamer's RTSP server.

Run by the system Python, which has GStreamer's introspection bindings (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good and -bad; .ci/run installs them):
``/usr/bin/python3 tests/rtsp_server.py VIDEO PORT USER PASSWORD``. The MPEG-4 part 2 video of the samples
is sent as it is (RFC 6416 payload), not re-encoded, from its start to each viewer, and the server asks for
the user and password (RTSP basic authentication), as an IP camera does. Prints ``serving`` once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    video, port, user, password = sys.argv[1:5]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    factory = GstRtspServer.RTSPMediaFactory()
    payload = "rtpmp4vpay name=pay0 pt=96 config-interval=1"
    factory.set_launch(f"( filesrc location={video} ! qtdemux ! mpeg4videoparse ! {payload} )")
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    print("serving", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
