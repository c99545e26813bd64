"""Constants of the device package."""

import logging
from pathlib import Path

APP_NAME = "moodcast"
ENV_PREFIX = "MOODCAST_"
DEFAULT_MODEL_PATH = "models/emotion-int8.tflite"
EVENT_SCHEMA_VERSION = 1
CARD_SCHEMA_VERSION = 1
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
SUMMARY_INTERVAL_S = 60.0
# <outbox>.seq holds the highest seq, the oldest waiting and the highest stored, each zero-padded to this many
# digits (a 64-bit seq has at most 19): every write has the same length, so on a full card, where no new file
# can be made, it can be written over the old one in place (device.outputs.outbox).
SEQ_FILE_DIGITS = 20
# While the outbox file cannot be written (a full card), storing the events waiting in memory is tried again
# at most this often: each try re-inserts all of them (up to mqtt.outbox_max) before it fails, which made
# every put of the frame loop slower as they piled up (13 ms at 10,000 on x86), with the Delivery lock held.
STORE_RETRY_S = 5.0
# How long a write of the outbox file waits for another program's lock on it (an sqlite3 shell left in a
# transaction) before it fails and the events wait in memory: SQLite's busy timeout. Python's default, 5 s,
# held the frame loop that long at every try.
OUTBOX_BUSY_TIMEOUT_S = 0.25
# The outbox's WAL is copied into the file (a checkpoint) once it holds this many pages, after which SQLite
# writes it again from its start: at most about 400 KiB (4,120 bytes a 4-KiB page with its frame header). At
# SQLite's default, 1,000 pages, it grew to about 4 MiB, and a file size limit below that (systemd's
# LimitFSIZE=) stopped every write for good, however few events waited. The cost is a checkpoint (two fsyncs
# and the few pages the events touched, written into the file) about every 35 events stored and delivered
# instead of every 350 (29 against 2 over 1,000 events, x86); with synchronous=NORMAL they are the only fsyncs
# the outbox makes, so the card still sees few.
OUTBOX_WAL_PAGES = 100
# A checkpoint does not shrink the WAL; SQLite cuts it to this many bytes when it next starts over. Twice the
# WAL's usual bound, so that only one grown by a large transaction (the events kept in memory while the card
# was full, stored at once) is cut, not each cycle's few frames past OUTBOX_WAL_PAGES.
OUTBOX_WAL_LIMIT_BYTES = 2 * OUTBOX_WAL_PAGES * (4096 + 24)
FPS_SMOOTHING = 0.1  # the newest frame interval's weight in the shown frame rate (device.loop.FrameRate)

# Classifier runtimes, in the documented order: LiteRT, tflite-runtime (Pi OS bookworm), full TensorFlow.
RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")

# Network cameras read through OpenCV's FFmpeg backend (camera.device).
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
# A video file that ends this much before the duration its container announces is said to be cut short.
EARLY_END_S = 1.0
# A camera or stream that delivers frames again after a stall is retried from the shortest backoff (1 s) when
# it stalls once more only if it delivered frames for this long: one that drops every few seconds (a failing
# link, a server that sends a few frames and hangs) is reopened ever less often, up to every 30 s, not every
# 2 s forever with two log lines each time.
CAMERA_STEADY_S = 30.0
# A source that does not say its frame rate (HTTP MJPEG, for which FFmpeg reports its default of 25 fps) has
# the rate its frames arrive at logged once, measured over this long after each opening.
RATE_MEASURE_S = 3.0
# The longest gap between two frames a recording holds the first for (a stream that stalled for minutes is
# not recorded as minutes of one frame).
RECORDING_MAX_GAP_S = 5.0
# OpenCV's video writer says nothing when its file cannot grow (a full disk, the file size limit, the file
# removed): ``write`` returns None, and FFmpeg writes nothing more to a file once a write of it failed. So
# the recording's file and disk are looked at (a stat and a statvfs) after every frame written, asking for
# room for the most the next frame and the close can write (the two below and the raw frame), and a WARNING
# is logged when one of them changes (device.display.room).
# FFmpeg writes its file 256 KiB at a time (measured with OpenCV 4.x's FFmpeg backend, .mp4 and .avi): a look
# finds up to this much of the recording not written yet, which the file must still have room for.
RECORDING_MIN_ROOM_BYTES = 1 << 18
# The file's index, written when it is closed: an .avi's takes 16 bytes a frame, an .mp4's about 8.
RECORDING_INDEX_BYTES_PER_FRAME = 16
# Face detection.
HAAR_WINDOW_PX = 24  # the frontal-face cascade's base window
# A window searched on its own (a hint's, an unannounced track's) and the verifier's patch are searched for
# faces of these sizes relative to the box's: the range over which the cascade's raw hits on one face spread.
TRACK_SIZE_RANGE = (0.7, 1.45)
# An exact window (EXACT_BOX_SCORE_MARGIN below) gathers the raw hits of the whole frame's pyramid levels at
# these sizes relative to the track's: the whole cluster Haar groups into the face's box, so the box is the
# whole-frame search's own (0.7-1.45 left out part of it on 1 of 10 windows of the four-face clip: the box
# moved 1-2 px; 0.6-1.6 on 3 of the one-face clip's 25, where the track's size, from the small image, is 8 %
# over the face's and the cluster holds hits of 0.58 of it).
TRACK_HIT_RANGE = (0.55, 1.6)
# An announced track is searched for the whole-frame search's exact box (TRACK_HIT_RANGE above, ~10 pyramid
# levels across the frame: the costliest search) only while its label is near a class boundary: its two best
# smoothed scores closer than this. Elsewhere a few pixels of Haar's noise in the box cannot change its label,
# and its window is searched on its own (TRACK_SIZE_RANGE: about a third of the cost).
EXACT_BOX_SCORE_MARGIN = 0.2
# A clear label's window that holds no other track's box is searched on its own with this pyramid step instead
# of detect.scale_factor (1.1; a detect.scale_factor coarser than this is kept): half the levels, for the box
# of a face whose label a few pixels cannot change (Viola & Jones, 2001, scanned with steps of 1.25). Measured
# on 7 Dec 2026: four faces 9.6 % faster, one face 10.7 %, recall, precision and identity unchanged on every
# clip. A window shared with a neighbour keeps the reference's step: with 1.2 there, the 20-face crowd's
# recall fell from 0.946 to 0.927 (fewer hits to group each face apart from the next).
ALONE_WINDOW_SCALE_FACTOR = 1.2
# A track found once has no velocity yet: its next window has this margin (face sizes on every side), so
# a small face walking a quarter of its size a frame stays inside it with the room Haar's neighbours need.
NEW_TRACK_WINDOW_FRAC = 0.6
# One whole-frame search in four runs on a detection image this much wider: Haar's pyramid then samples
# other face sizes and pixel phases, so a face the usual image misses (one in a crowd of 20) is found there.
WIDER_SEARCH_FACTOR = 1.1
# The whole-frame searches timed (after a first, the cascade's warm-up) before SearchBudget (schedule.py) says
# whether they keep up with the source: a median over this many is steady against one slow search.
SEARCH_BUDGET_SAMPLES = 10
# One whole-frame search in four (detect.second_cascade) runs OpenCV's frontalface_alt2 cascade (Lienhart,
# Kuranov & Pisarevsky, 2003: Gentle AdaBoost of small trees, 20 stages) instead of the reference's: a face
# the reference's cascade scores weakly (the crying child of the 20-face crowd gets 2-3 raw hits at any scale)
# is found there. Its boxes frame faces as the reference's do (189 faces both found: centre within 0.3 % of
# the side, side 0.99x, IoU 0.92), so the crop calibration holds. Clusters need SECOND_MIN_NEIGHBORS + 1 hits
# (its authors' setting of 3, fixed: detect.min_neighbors is the reference cascade's); on the clutter clip it
# gives 0.24 boxes a frame against the reference cascade's 0.84 at 5.
SECOND_CASCADE = "haarcascade_frontalface_alt2.xml"
SECOND_MIN_NEIGHBORS = 3
# OpenCV's detectMultiScale moves its window 2 pixels at a time at the scales up to 2x its base window
# (1 pixel above), so a face at most COARSE_STEP_MAX_PX wide in the detection image (the smallest faces,
# those the image is sized for) gets a quarter of the raw hits the reference's full-resolution search gives
# it, and too few to reach minNeighbors. Clusters of at least HINT_MIN_HITS raw hits there are hints: each
# is searched again in a window of the full-resolution frame, with the reference's step and minNeighbors.
COARSE_STEP_MAX_PX = 2 * HAAR_WINDOW_PX
HINT_MIN_HITS = 2
GROUP_EPS = 0.2  # detectMultiScale's own grouping of raw hits (cv::groupRectangles' eps)
# Identity through gaps: a track the last search missed takes back a face of its size (within the ratio)
# whose centre is within REACQUIRE_DISTANCE_FRAC face sizes of the straight path from where it was to where
# its velocity would have taken it by now (it may have paused behind something on the way), if their gray
# histograms (APPEARANCE_BINS bins) have a Bhattacharyya coefficient of at least REACQUIRE_MIN_SIMILARITY.
REACQUIRE_DISTANCE_FRAC = 1.0
REACQUIRE_SIZE_RATIO = 1.25
REACQUIRE_MIN_SIMILARITY = 0.8
APPEARANCE_BINS = 16
# The verifier: a second, stricter frontal cascade run on each box that would start a track, cut with a
# margin and scaled so the face is VERIFY_FACE_PX wide. It accepts the box when its best hit's level weight
# reaches VERIFY_MIN_WEIGHT, meant to lie between Haar's false hits and the faces (Haar's hits at
# minNeighbors 3). python -m tools.verifier_weights weighs both (OpenCV 4.14.0, 7 Dec 2026): of 747 false
# hits (395 on the clutter clip, 285 on hd1080-walk's and 3 on hd720-walk's photographs, all frames; 64 on
# 18 face-free scikit-image photographs at 1-3x) one reaches 55.6 (56.11: the coins at 2x) and the clutter
# clip's highest weighs 55.58; of Haar's 3221 boxes on faces (every frame of the scene and sample clips) 155
# weigh less than 55.6 (128 of them in the 20-face crowd, whose faces get further tries), 50 less than 55.2,
# which 59 false hits reach. The figures 55.6 was chosen by (637 false hits at most 55.54, 7 of 309 face
# boxes under it) came from a script not kept and do not reproduce: the HD clips were remade after (3b1e22d),
# and 309 is about the face boxes of one frame in ten. 56.2, above every false hit, would stop 691 face boxes.
VERIFY_CASCADE = "haarcascade_frontalface_alt2.xml"
VERIFY_MARGIN_FRAC = 0.3
VERIFY_FACE_PX = 72
VERIFY_MIN_WEIGHT = 55.6

# Linux framebuffer display.
SYSFS_GRAPHICS = Path("/sys/class/graphics")
SUPPORTED_BPP = (16, 32)

# HTTP server.
MJPEG_BOUNDARY = "frame"
STREAM_INTERVAL_S = 0.1  # at most ten frames a second per viewer
STREAM_KEEPALIVE_S = 2.0  # resend the newest frame this often even when it has not changed
MAX_STREAMS = 4  # each viewer holds a thread; the Pi has few to spare
SOCKET_TIMEOUT_S = 10.0  # a viewer that stops reading is dropped after this long
SHUTDOWN_POLL_S = 0.2  # how soon stop() takes effect; the thread wakes this often
LISTEN_BACKLOG = 64  # connections waiting to be accepted (socketserver's 5 reset a burst, not answered)
# POST /api/v1/analyze: the limits of an image, and the worker that parses, decodes and analyses them one at
# a time at the lowest CPU priority (nice 19); at most ANALYZE_ADMITTED requests are taken at once (one
# analysed, the others read or waiting), the rest are answered 429 before their body is read, so requests
# never starve the frame loop and at most one image is decoded at a time.
ANALYZE_MAX_BYTES = 10 * 2**20
ANALYZE_MAX_SIDE_PX = 4096
ANALYZE_MAX_PARTS = 4  # of a multipart body: the image and a few form fields; more is refused unparsed
ANALYZE_ADMITTED = 3
ANALYZE_MAX_BODY = ANALYZE_MAX_BYTES + 64 * 2**10  # room for multipart headers
ANALYZE_NICE = 19
ANALYZE_TIMEOUT_S = 30.0
MAX_JSON_BODY = 4096  # the page's small JSON requests (feedback)
# A refused request's body is read and dropped up to this size before the connection closes, so a client that
# sends all of it (Python's http.client, requests) still reads the answer; closing a socket with unread data
# resets the connection and loses it. A larger body, or one still arriving after REFUSED_BODY_DRAIN_S, is cut
# off unread. The analyser refuses an oversize body before it admits the request, so a refused upload never
# holds one of its ANALYZE_ADMITTED places.
REFUSED_BODY_DRAIN_MAX = 4 * ANALYZE_MAX_BODY
REFUSED_BODY_DRAIN_S = 10.0
# A request body must arrive whole within this long, else 408: one trickled a byte at a time would otherwise
# hold its connection, and an analyser place, for as long as the client liked (10 MB at 1 MB/s takes 10 s).
BODY_READ_S = 30.0
TOKEN_MIN_CHARS = 16  # http.token: shorter is refused at start (a guessable token is no protection)
TOKEN_COOKIE = "moodcast_token"  # the page's login keeps the token here (HttpOnly, SameSite=Strict)
# The web page: the frame loop hands the dashboard its faces this often; it keeps SERIES_S of them for the
# live chart; the history store gets a sample every HISTORY_SAMPLE_S and groups them by HISTORY_BUCKET_S.
DASHBOARD_SAMPLE_S = 1.0
SERIES_S = 300.0
HISTORY_SAMPLE_S = 5.0
HISTORY_BUCKET_S = 300
HISTORY_PRUNE_S = 60.0  # rows past history.retention_h are deleted this often, and at open
HISTORY_WARN_EVERY_S = 600.0  # a history write failing on and on (disk full) is logged at most this often
FEEDBACK_FRAME_S = 0.5  # feedback on: the raw frame a correction is cut from is kept this often
FEEDBACK_FRAMES_KEPT = 10  # ... and the newest this many with faces (5 s)
FEEDBACK_KEPT_S = FEEDBACK_FRAME_S * FEEDBACK_FRAMES_KEPT  # ... and none older than this (an empty room: 404)

# Logging.
# Third-party loggers held quieter than ours.
QUIET_LOGGERS = {"paho": logging.WARNING, "picamera2": logging.WARNING, "PIL": logging.WARNING}
# syslog priorities for the "<N>" prefix that journald reads (sd-daemon(3)).
SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

# Prometheus metrics.
METRIC_STAGES = ("capture", "detect", "classify", "track", "draw")
# 0.1 ms to 1 s: the classifier takes under a millisecond a face, Haar tens of milliseconds.
STAGE_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

# Overlay drawing.
OVERLAY_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX, as a number: importing this module must not load OpenCV
# BGR, one distinct colour per FER2013 label; anything else is drawn in FALLBACK_COLOUR.
EMOTION_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),  # red
    "disgust": (40, 170, 40),  # green
    "fear": (180, 60, 170),  # purple
    "happy": (0, 215, 255),  # yellow
    "sad": (220, 120, 30),  # blue
    "surprise": (0, 140, 255),  # orange
    "neutral": (220, 200, 0),  # teal
}
FALLBACK_COLOUR: tuple[int, int, int] = (150, 150, 150)
STATUS_BACKGROUND: tuple[int, int, int] = (32, 32, 32)
STATUS_TEXT: tuple[int, int, int] = (255, 255, 255)
BAR_BACKGROUND: tuple[int, int, int] = (80, 80, 80)
DIM_FACTOR = 0.55  # unconfirmed faces are drawn at this brightness
TAG_CACHE_SIZE = 128  # rendered label tags kept (one is ~25 kB on a 640x480 frame)

# MQTT publishing.
# Events handed to paho and not yet acknowledged, at most. paho's own in-flight limit is lifted so that it
# never queues behind our back (it would then send newer messages before older ones).
INFLIGHT_WINDOW = 20
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
# A warning that repeats while nothing changes is logged again at most this often.
REPEAT_WARNING_S = 300.0
DROP_WARNING_S = 60.0
# Reason codes of a CONNACK that mean the broker did not accept the user name and password.
AUTH_REFUSED_CODES = {4, 5, 134, 135}

# Desktop window display.
WINDOW_TITLE = "moodcast"
DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
HEADLESS_DRIVERS = ("offscreen", "dummy")  # they draw nowhere; used only when SDL_VIDEODRIVER names them
