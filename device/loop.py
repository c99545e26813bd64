"""FrameLoop: each frame from the source through the pipeline to the outputs and the screen, and counted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2

from device.config import Config
from device.const import DASHBOARD_SAMPLE_S, FEEDBACK_FRAME_S, FPS_SMOOTHING, SUMMARY_INTERVAL_S
from device.display.display import Display, NoDisplay
from device.display.overlay import StatusLine, draw_overlay
from device.errors import MoodcastError
from device.heartbeat import Heartbeat
from device.metrics import Metrics
from device.outputs.events import EventFactory
from device.outputs.mood import RoomMood
from device.outputs.sink import EventSink, status_text
from device.sources.camera import Frame, FrameSource
from device.vision.pipeline import Pipeline, face_labels
from device.vision.track import TrackEvent

if TYPE_CHECKING:
    from device.web.dashboard import Dashboard
    from device.web.feedback import FeedbackStore

logger = logging.getLogger(__name__)


class FrameRate:
    """Frames per second from the intervals between frames: the inverse of their exponential moving average
    (weight ``FPS_SMOOTHING`` for the newest). Averaging the rates instead let the short intervals that
    follow a slow frame (a reader catching up, 1 ms apart) count as 1000 fps each: 15 fps showed as 107."""

    def __init__(self) -> None:
        self._interval_s = 0.0

    @property
    def per_s(self) -> float:
        """The rate now, frames per second; 0.0 before any interval."""
        return 1.0 / self._interval_s if self._interval_s else 0.0

    def update(self, interval_s: float) -> float:
        """Add the seconds since the last frame (ignored unless > 0); the rate now (``per_s``)."""
        if interval_s > 0:
            old = self._interval_s
            self._interval_s = interval_s if old == 0 else old + FPS_SMOOTHING * (interval_s - old)
        return self.per_s


class FrameLoop:
    """The daemon's one frame loop, run in the calling thread over the components the app started."""

    def __init__(
        self,
        config: Config,
        stop_event: threading.Event,
        metrics: Metrics,
        pipeline: Pipeline,
        heartbeat: Heartbeat,
        *,
        source: FrameSource,
        display: Display,
        events: EventFactory,
        sinks: Sequence[EventSink],
        mood: RoomMood,
        dashboard: Dashboard | None,
        feedback: FeedbackStore | None,
    ) -> None:
        self.config = config
        self.stop_event = stop_event
        self.metrics = metrics
        self.pipeline = pipeline
        self.heartbeat = heartbeat
        self.source = source
        self.display = display
        self.events = events
        self.sinks = sinks
        self.mood = mood
        self.dashboard = dashboard
        self.feedback = feedback
        self.latest_jpeg: bytes | None = None  # the last annotated frame, for /snapshot.jpg and the stream
        self._sampled_at = -DASHBOARD_SAMPLE_S
        self._feedback_at = -FEEDBACK_FRAME_S
        self._frame_rate = FrameRate()
        self._frames_dropped_counted = 0
        self._events_dropped_counted = 0
        self._events_lost_counted = 0
        self._outbox_damaged_counted = 0

    def run(self) -> None:
        """Process frames until the source ends, the viewer quits, or ``stop_event`` is set; then end every
        face (``end`` events) and publish the last state. Raises the MoodcastError of a sink that failed for
        good (the events pipe's reader gone), after the faces' ends and the state have reached the others, so
        no subscriber is left with a face open."""
        max_frames = self.config.camera.max_frames
        draw = not isinstance(self.display, NoDisplay) or self.config.http.enabled
        last_summary = time.monotonic()
        frames_in_summary = 0
        last: Frame | None = None
        previous_start = time.perf_counter()
        failed: MoodcastError | None = None
        self._alive()  # the first state goes out now, so even a run shorter than its timer publishes it
        while not self.stop_event.is_set():
            started = time.perf_counter()
            frame = self.source.read(self.stop_event, idle=self._alive)
            if frame is None:
                break
            captured = time.perf_counter()
            self._update_fps(captured - previous_start)
            previous_start = captured
            result = self.pipeline.process(frame)
            last = frame
            try:
                self._emit(result.events, frame.index, frame.time_s)
            except MoodcastError as err:  # a sink failed for good: the others still get the faces' ends
                failed = err
                break
            self._sample(frame)
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
            self.heartbeat.frame_done(now)
            self._alive()
            if now - last_summary >= SUMMARY_INTERVAL_S:
                self._log_summary(frames_in_summary / (now - last_summary))
                last_summary, frames_in_summary = now, 0
            if max_frames and frame.index + 1 >= max_frames:
                break
        if last is not None:
            try:
                self._emit(self.pipeline.tracker.finish(), last.index, last.time_s)
            except MoodcastError as err:
                failed = failed or err
        self.heartbeat.stopped()
        if failed is not None:
            raise failed

    def _alive(self) -> None:
        """Once per frame and while the camera delivers nothing: see :meth:`Heartbeat.beat`."""
        self.heartbeat.beat(self.source.lost, self._frame_rate.per_s)

    def _emit(self, events: list[TrackEvent], index: int, time_s: float) -> None:
        """Give each event to every sink. A sink that fails for good (MoodcastError: the events pipe's reader
        gone) stops the daemon, but only once every other sink has had the whole batch: the MQTT outbox
        holds each event whose ``seq`` was given out, so no gap is left there."""
        failed: MoodcastError | None = None
        for event in events:
            payload = self.events.build(event, index, time_s, self.source.size)
            self.metrics.events_total.labels(event.kind).inc()
            for sink in self.sinks:
                try:
                    sink.publish_event(payload)
                except MoodcastError as err:
                    failed = failed or err
        if failed is not None:
            raise failed

    def _sample(self, frame: Frame) -> None:
        """Once a second, the room mood and the page's series; with feedback on, keep the raw frame and its
        faces' boxes every FEEDBACK_FRAME_S (before the overlay is drawn on it)."""
        now = time.monotonic()
        if now - self._sampled_at >= DASHBOARD_SAMPLE_S:
            self._sampled_at = now
            tracks = [t for t in self.pipeline.tracker.tracks if t.confirmed]
            self.mood.observe(now, [t.emotion for t in tracks])
            if self.dashboard is not None:
                rows = [(t.face_id, t.emotion, [float(s) for s in t.scores]) for t in tracks]
                self.dashboard.observe(time.time(), rows)
        if self.feedback is not None and now - self._feedback_at >= FEEDBACK_FRAME_S:
            self._feedback_at = now
            shown = self.pipeline.tracker.shown()
            self.feedback.keep(frame.image, {t.face_id: t.shown_box for t in shown if t.confirmed})

    def _show(self, frame: Frame) -> bool:
        image = frame.image
        tracker = self.pipeline.tracker
        shown = tracker.shown()
        faces = face_labels(shown, self.pipeline.classifier.labels)
        # A live track the last search missed is not drawn, but its face is most likely still there (a crowd
        # face Haar misses now and then): no neighbour's tag or panel goes over it.
        missed = [track.shown_box for track in tracker.tracks if all(track is not t for t in shown)]
        status = StatusLine(self._frame_rate.per_s, len(faces), status_text(self.sinks))
        draw_overlay(image, faces, status, avoid=missed)
        if self.config.http.enabled:
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                self.latest_jpeg = jpeg.tobytes()
        return self.display.show(image, frame.time_s)

    def _observe(self, timings: dict[str, float], faces: int) -> None:
        metrics = self.metrics
        metrics.frames_total.inc()
        metrics.faces.set(faces)
        for stage, seconds in timings.items():
            metrics.observe_stage(stage, seconds)
        dropped = self.source.dropped
        metrics.frames_dropped_total.inc(dropped - self._frames_dropped_counted)
        self._frames_dropped_counted = dropped
        stats = [sink.stats() for sink in self.sinks]
        metrics.events_queued.set(sum(s.queued for s in stats))
        metrics.mqtt_connected.set(1 if any(s.connected for s in stats) else 0)
        dropped_events = sum(s.dropped for s in stats)
        metrics.events_dropped_total.inc(dropped_events - self._events_dropped_counted)
        self._events_dropped_counted = dropped_events
        lost, damaged = sum(s.lost for s in stats), sum(s.damaged_files for s in stats)
        metrics.events_lost_total.inc(lost - self._events_lost_counted)
        metrics.outbox_damaged_total.inc(damaged - self._outbox_damaged_counted)
        self._events_lost_counted, self._outbox_damaged_counted = lost, damaged

    def _update_fps(self, frame_interval_s: float) -> None:
        self.metrics.fps.set(self._frame_rate.update(frame_interval_s))

    def _log_summary(self, fps: float) -> None:
        queued = sum(sink.stats().queued for sink in self.sinks)
        logger.info(
            "%.1f fps, %d faces tracked, %d frames dropped, %d events queued",
            fps,
            len(self.pipeline.tracker.tracks),
            self.source.dropped,
            queued,
        )
