"""MoodcastApp: builds each component from the config, runs the frame loop, shuts everything down."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import cv2
import sdnotify

from device.config import Config, redact_url
from device.const import DASHBOARD_SAMPLE_S, FEEDBACK_FRAME_S, SUMMARY_INTERVAL_S
from device.display.display import Display, NoDisplay, open_display
from device.display.overlay import StatusLine, draw_overlay
from device.metrics import Metrics
from device.outputs.events import EventFactory
from device.outputs.jsonl import JsonLinesSink
from device.outputs.mood import RoomMood
from device.outputs.sink import EventSink, status_text
from device.sources.camera import Frame, FrameSource, open_source
from device.vision.classify import EmotionClassifier
from device.vision.detect import FaceDetector
from device.vision.pipeline import Pipeline, face_labels
from device.vision.track import FaceTracker, TrackEvent

if TYPE_CHECKING:
    from device.web.dashboard import Dashboard
    from device.web.feedback import FeedbackStore
    from device.web.http import HttpServer

logger = logging.getLogger(__name__)

# A change of the retained state (faces, dominant emotion, camera) is published at most this often;
# an unchanged one every mqtt.state_interval_s.
STATE_CHANGE_MIN_INTERVAL_S = 1.0


def watchdog_interval_s() -> float:
    """Half the watchdog timeout systemd gives us (``WATCHDOG_USEC``, sd_watchdog_enabled(3)), else 5 s."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 5.0


class MoodcastApp:
    """The daemon: one frame loop in the calling thread, helpers in their own named threads."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.metrics = Metrics()
        self._notifier = sdnotify.SystemdNotifier()
        self.classifier = self._load_classifier()
        self.pipeline = Pipeline(
            FaceDetector(config.detect), self.classifier, FaceTracker(config.track, self.classifier.labels)
        )
        self.events = EventFactory(config.device_id, time.time())  # renumbered from the outputs in start()
        self._sinks: list[EventSink] = []  # every event output, looped over like Frigate's communicators
        self._http: HttpServer | None = None
        self.mood = RoomMood(self.classifier.labels, config.mood.window_s)
        self._dashboard: Dashboard | None = None
        self._feedback: FeedbackStore | None = None
        self._sampled_at = -DASHBOARD_SAMPLE_S
        self._feedback_at = -FEEDBACK_FRAME_S
        self._display: Display = NoDisplay()
        self._source: FrameSource | None = None
        self._latest_jpeg: bytes | None = None
        self._last_frame_s = time.monotonic()
        self._fps = 0.0
        self._frames_dropped_counted = 0
        self._events_dropped_counted = 0
        self._events_lost_counted = 0
        self._outbox_damaged_counted = 0
        self._watchdog_s = watchdog_interval_s()
        self._last_watchdog = 0.0
        self._state_sent: dict[str, Any] | None = None  # the last state published, without fps
        self._state_sent_at = 0.0
        self._camera_lost = False

    # -- start-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Open model, camera, display and outputs; any user error raises before frames flow."""
        self._init_source()
        self._init_display()
        self._init_events()
        self._init_http()
        self._notifier.notify("READY=1")
        self._notifier.notify(f"STATUS=running on {redact_url(self.config.camera.device)}")

    def _load_classifier(self) -> EmotionClassifier:
        model = self.config.model
        classifier = EmotionClassifier(model.path, threads=model.threads)
        card = classifier.card
        if card.accuracy is None:
            logger.warning(
                "model %s (%s) has no metrics in its card: a placeholder or unverified model, "
                "its labels mean little",
                card.name,
                model.path,
            )
        else:
            logger.info(
                "model %s loaded: %s, accuracy %.1f%% on %s",
                card.name,
                card.quantization,
                100 * card.accuracy,
                card.metrics.get("split", "?"),
            )
        return classifier

    def _init_source(self) -> None:
        self._source = open_source(self.config.camera, self.config.detect)
        self._source.open()

    def _init_display(self) -> None:
        assert self._source is not None
        self._display = open_display(self.config.display, self._source.size, self._source.fps)

    def _init_events(self) -> None:
        if self.config.events.path:
            self._sinks.append(JsonLinesSink(self.config.events.path))
        if self.config.mqtt.enabled:
            from device.outputs.publish import EventPublisher

            self._sinks.append(EventPublisher(self.config.mqtt, self.config.device_id))
        if self.config.http.enabled:  # the web page's faces come from the events, like any output's
            from device.web.dashboard import Dashboard
            from device.web.history import HistoryStore

            history = self.config.history
            store = HistoryStore(history.path, history.retention_h, self.classifier.labels)
            self._dashboard = Dashboard(self.classifier.labels, self.mood, store)
            self._sinks.append(self._dashboard)
        # seq continues from the highest any output remembers (the MQTT outbox file, across restarts)
        last_seq = max((sink.last_seq() for sink in self._sinks), default=0)
        self.events = EventFactory(self.config.device_id, time.time(), last_seq, run=self.events.run)
        for sink in self._sinks:
            sink.start()

    def _init_http(self) -> None:
        if not self.config.http.enabled:
            return
        from device.web.analyze import Analyzer
        from device.web.http import HttpServer

        if self.config.feedback.enabled:
            from device.web.feedback import FeedbackStore

            self._feedback = FeedbackStore(
                self.config.feedback, self.classifier.card.crop, self.classifier.labels
            )
            logger.warning(
                "feedback on: corrected faces are stored as 48x48 images in %s", self.config.feedback.dir
            )
        dashboard = self._dashboard
        self._http = HttpServer(
            self.config.http,
            self.metrics,
            lambda: self._latest_jpeg,
            self.healthy,
            analyzer=Analyzer(self.config),
            dashboard=dashboard,
            feedback=self._feedback,
            history=None
            if dashboard is None
            else lambda hours: dashboard.history.buckets(time.time(), hours),
        )
        self._http.start()

    # -- the loop -------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """True while frames flow (a frame within the camera's stall timeout)."""
        return time.monotonic() - self._last_frame_s < self.config.camera.stall_timeout_s

    def run(self) -> None:
        """Process frames until the source ends, the viewer quits, or ``stop_event`` is set."""
        assert self._source is not None
        max_frames = self.config.camera.max_frames
        draw = not isinstance(self._display, NoDisplay) or self._http is not None
        last_summary = time.monotonic()
        frames_in_summary = 0
        last: Frame | None = None
        previous_start = time.perf_counter()
        self._alive()  # the first state goes out now, so even a run shorter than its timer publishes it
        while not self.stop_event.is_set():
            started = time.perf_counter()
            frame = self._source.read(self.stop_event, idle=self._alive)
            if frame is None:
                break
            captured = time.perf_counter()
            self._update_fps(captured - previous_start)
            previous_start = captured
            result = self.pipeline.process(frame)
            self._emit(result.events, frame.index, frame.time_s)
            self._sample(frame)
            last = frame
            timings = {"capture": captured - started, **result.timings}
            if draw:
                drawn = time.perf_counter()
                keep_going = self._show(frame)
                timings["draw"] = time.perf_counter() - drawn
                if not keep_going:
                    logger.info("display closed by the viewer; stopping")
                    break
            self._observe(timings, len(result.boxes))
            frames_in_summary += 1
            now = time.monotonic()
            self._last_frame_s = now
            self._alive()
            if now - last_summary >= SUMMARY_INTERVAL_S:
                self._log_summary(frames_in_summary / (now - last_summary))
                last_summary, frames_in_summary = now, 0
            if max_frames and frame.index + 1 >= max_frames:
                break
        if last is not None:
            self._emit(self.pipeline.tracker.finish(), last.index, last.time_s)

    def _alive(self) -> None:
        """The loop is alive: feed the systemd watchdog, follow the camera's state, publish the state.

        Called once per frame and, while the camera delivers nothing, from the wait for the next frame:
        the watchdog then catches a hung loop, not a missing camera."""
        assert self._source is not None
        now = time.monotonic()
        if now - self._last_watchdog >= self._watchdog_s:
            self._notifier.notify("WATCHDOG=1")
            self._last_watchdog = now
        lost = bool(getattr(self._source, "lost", False))
        if lost != self._camera_lost:
            self._camera_lost = lost
            camera = redact_url(self.config.camera.device)
            status = f"camera {camera} lost; reopening it" if lost else f"running on {camera}"
            self._notifier.notify(f"STATUS={status}")
        self.metrics.camera_connected.set(0 if lost else 1)
        self._publish_state(now)

    def _publish_state(self, now: float) -> None:
        """Publish the retained state when it changed (at most every STATE_CHANGE_MIN_INTERVAL_S) and
        every ``mqtt.state_interval_s`` in any case."""
        if not self._sinks:
            return
        state = self.state()
        summary = {key: value for key, value in state.items() if key not in ("fps", "mood_shares")}
        since = now - self._state_sent_at
        changed = summary != self._state_sent
        if (changed and since >= STATE_CHANGE_MIN_INTERVAL_S) or since >= self.config.mqtt.state_interval_s:
            for sink in self._sinks:
                sink.publish_state(state)
            self._state_sent, self._state_sent_at = summary, now

    def _emit(self, events: list[TrackEvent], index: int, time_s: float) -> None:
        assert self._source is not None
        for event in events:
            payload = self.events.build(event, index, time_s, self._source.size)
            self.metrics.events_total.labels(event.kind).inc()
            for sink in self._sinks:
                sink.publish_event(payload)

    def _sample(self, frame: Frame) -> None:
        """Once a second, the room mood and the page's series; with feedback on, keep the raw frame and its
        faces' boxes every FEEDBACK_FRAME_S (before the overlay is drawn on it)."""
        now = time.monotonic()
        if now - self._sampled_at >= DASHBOARD_SAMPLE_S:
            self._sampled_at = now
            tracks = [t for t in self.pipeline.tracker.tracks if t.confirmed]
            self.mood.observe(now, [t.emotion for t in tracks])
            if self._dashboard is not None:
                rows = [(t.face_id, t.emotion, [float(s) for s in t.scores]) for t in tracks]
                self._dashboard.observe(time.time(), rows)
        if self._feedback is not None and now - self._feedback_at >= FEEDBACK_FRAME_S:
            self._feedback_at = now
            shown = self.pipeline.tracker.shown()
            self._feedback.keep(frame.image, {t.face_id: t.shown_box for t in shown if t.confirmed})

    def _show(self, frame: Frame) -> bool:
        image = frame.image
        faces = face_labels(self.pipeline.tracker.shown(), self.classifier.labels)
        draw_overlay(image, faces, StatusLine(self._fps, len(faces), status_text(self._sinks)))
        if self._http is not None:
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                self._latest_jpeg = jpeg.tobytes()
        return self._display.show(image)

    def _observe(self, timings: dict[str, float], faces: int) -> None:
        assert self._source is not None
        metrics = self.metrics
        metrics.frames_total.inc()
        metrics.faces.set(faces)
        for stage, seconds in timings.items():
            metrics.observe_stage(stage, seconds)
        dropped = self._source.dropped
        metrics.frames_dropped_total.inc(dropped - self._frames_dropped_counted)
        self._frames_dropped_counted = dropped
        stats = [sink.stats() for sink in self._sinks]
        metrics.events_queued.set(sum(s.queued for s in stats))
        metrics.mqtt_connected.set(1 if any(s.connected for s in stats) else 0)
        dropped_events = sum(s.dropped for s in stats)
        metrics.events_dropped_total.inc(dropped_events - self._events_dropped_counted)
        self._events_dropped_counted = dropped_events
        lost, damaged = sum(s.lost for s in stats), sum(s.damaged_files for s in stats)
        metrics.events_lost_total.inc(lost - self._events_lost_counted)
        metrics.outbox_damaged_total.inc(damaged - self._outbox_damaged_counted)
        self._events_lost_counted, self._outbox_damaged_counted = lost, damaged

    def state(self) -> dict[str, Any]:
        """The retained dashboard summary: confirmed faces, the dominant emotion, fps, and the camera
        (``ok``, or ``lost`` while it delivers nothing and is being reopened: no faces are then known)."""
        if self._camera_lost:
            return {
                "faces": 0,
                "dominant": None,
                "fps": 0.0,
                "camera": "lost",
                "mood": None,
                "mood_shares": {},
            }
        tracks = [t for t in self.pipeline.tracker.tracks if t.confirmed]
        emotions = Counter(t.emotion for t in tracks)
        dominant = emotions.most_common(1)[0][0] if emotions else None
        return {
            "faces": len(tracks),
            "dominant": dominant,
            "fps": round(self._fps, 1),
            "camera": "ok",
            "mood": self.mood.dominant(),  # the room mood over mood.window_s, and each emotion's share
            "mood_shares": self.mood.shares(),
        }

    def _update_fps(self, frame_interval_s: float) -> None:
        if frame_interval_s > 0:
            rate = 1.0 / frame_interval_s
            self._fps = rate if self._fps == 0 else 0.9 * self._fps + 0.1 * rate
            self.metrics.fps.set(self._fps)

    def _log_summary(self, fps: float) -> None:
        assert self._source is not None
        queued = sum(sink.stats().queued for sink in self._sinks)
        logger.info(
            "%.1f fps, %d faces tracked, %d frames dropped, %d events queued",
            fps,
            len(self.pipeline.tracker.tracks),
            self._source.dropped,
            queued,
        )

    # -- shut-down ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every component, each with a bounded wait; safe to call after a failed start."""
        self.stop_event.set()
        self._notifier.notify("STOPPING=1")
        if self._source is not None:
            self._source.close()
        self._display.close()
        for sink in self._sinks:
            sink.close()
        if self._http is not None:
            self._http.stop()
        logger.info("stopped")
