"""MoodcastApp: the wiring. Builds each component from the config, hands them to the frame loop, stops them.

The frame loop itself is ``loop.py``; the signs of life it gives (systemd's watchdog, /healthz, the retained
state) are ``heartbeat.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import sdnotify

from device.config import Config, redact_url
from device.display.display import Display, NoDisplay, open_display
from device.display.video_path import input_video
from device.errors import ModelError, MoodcastError
from device.heartbeat import Heartbeat
from device.loop import FrameLoop
from device.metrics import Metrics
from device.outputs.events import EventFactory
from device.outputs.jsonl import JsonLinesSink
from device.outputs.mood import RoomMood
from device.outputs.sink import EventSink
from device.sources.camera import FrameSource, open_source
from device.vision.classify import EmotionClassifier
from device.vision.detect import FaceDetector
from device.vision.pipeline import Pipeline
from device.vision.track import FaceTracker

if TYPE_CHECKING:
    from device.web.dashboard import Dashboard
    from device.web.feedback import FeedbackStore
    from device.web.http import HttpServer

logger = logging.getLogger(__name__)


class MoodcastApp:
    """The daemon: one frame loop in the calling thread, helpers in their own named threads."""

    def __init__(self, config: Config, stop_event: threading.Event | None = None) -> None:
        self.config = config
        self.stop_event = stop_event or threading.Event()  # set: stop (the caller's signal handlers set it)
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
        self._heartbeat: Heartbeat | None = None  # built once the outputs exist (_init_loop)
        self._dashboard: Dashboard | None = None
        self._feedback: FeedbackStore | None = None
        self._display: Display = NoDisplay()
        self._source: FrameSource | None = None
        self._loop: FrameLoop | None = None

    # -- start-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Open model, camera, display and outputs; any user error raises before frames flow."""
        self._init_source()
        self._init_display()
        self._init_events()
        self._init_feedback()
        self._init_loop()
        self._init_http()
        self._notifier.notify("READY=1")
        self._notifier.notify(f"STATUS=running on {redact_url(self.config.camera.device)}")

    def _load_classifier(self) -> EmotionClassifier:
        """The model and its card, loaded; ModelError starting ``model.path: `` (as ``--check-config`` says
        it) when they cannot be."""
        model = self.config.model
        try:
            classifier = EmotionClassifier(model.path, threads=model.threads)
        except ModelError as err:
            raise ModelError(f"model.path: {err}") from None
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
        video = input_video(self.config.camera)
        self._display = open_display(self.config.display, self._source.size, self._source.fps, video)

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

    def _init_feedback(self) -> None:
        if not (self.config.http.enabled and self.config.feedback.enabled):
            return
        from device.web.feedback import FeedbackStore

        self._feedback = FeedbackStore(
            self.config.feedback,
            self.classifier.card.crop,
            self.classifier.labels,
            on_saved=self.metrics.feedback_saved_total.inc,
        )
        logger.warning(
            "feedback on: corrected faces are stored as 48x48 images in %s", self.config.feedback.dir
        )

    def _init_loop(self) -> None:
        assert self._source is not None
        self._heartbeat = Heartbeat(
            self.config, self._notifier, self.metrics, tuple(self._sinks), self.pipeline.tracker, self.mood
        )
        self._loop = FrameLoop(
            self.config,
            self.stop_event,
            self.metrics,
            self.pipeline,
            self._heartbeat,
            source=self._source,
            display=self._display,
            events=self.events,
            sinks=self._sinks,
            mood=self.mood,
            dashboard=self._dashboard,
            feedback=self._feedback,
        )

    def _init_http(self) -> None:
        if not self.config.http.enabled:
            return
        from device.web.analyze import Analyzer
        from device.web.http import HttpServer

        loop = self._loop
        assert loop is not None and self._heartbeat is not None
        dashboard = self._dashboard
        self._http = HttpServer(
            self.config.http,
            self.metrics,
            lambda: loop.latest_jpeg,
            self._heartbeat.healthy,
            analyzer=Analyzer(self.config),
            dashboard=dashboard,
            feedback=self._feedback,
            history=None
            if dashboard is None
            else lambda hours: dashboard.history.buckets(time.time(), hours),
        )
        self._http.start()

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        """Process frames until the source ends, the viewer quits, or ``stop_event`` is set."""
        assert self._loop is not None
        self._loop.run()

    # -- shut-down ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every component, each with a bounded wait; safe to call after a failed start. Raises the first
        sink's MoodcastError from closing (the events pipe's reader gone) once all are closed."""
        self.stop_event.set()
        self._notifier.notify("STOPPING=1")
        if self._source is not None:
            self._source.close()
        self._display.close()
        failed: MoodcastError | None = None
        for sink in self._sinks:  # every one is closed (the MQTT outbox flushed) even when one fails
            try:
                sink.close()
            except MoodcastError as err:
                failed = failed or err
        if self._http is not None:
            self._http.stop()
        logger.info("stopped")
        if failed is not None:
            raise failed
