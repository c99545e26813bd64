"""Prometheus metrics of the daemon, in a registry of its own, served by device.web.http at /metrics."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from device.const import METRIC_STAGES, STAGE_BUCKETS_S


class _WithoutCreated(Collector):
    """A view of a registry without the ``<name>_created`` samples of its counters and histograms.

    prometheus_client only turns them off for the whole process (``disable_created_metrics()`` or
    ``PROMETHEUS_DISABLE_CREATED_SERIES``); this view drops them from our registry's output alone.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            created = metric.name + "_created"
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            kept.samples = [sample for sample in metric.samples if sample.name != created]
            yield kept


class Metrics:
    """The daemon's counters, gauges and stage timings; ``render()`` gives the Prometheus text format."""

    def __init__(self, namespace: str = "moodcast") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.frames_total = Counter("frames", "Frames processed", namespace=namespace, registry=reg)
        self.frames_dropped_total = Counter(
            "frames_dropped", "Camera frames skipped because the pipeline was busy",
            namespace=namespace, registry=reg,
        )  # fmt: skip
        self.faces = Gauge("faces", "Faces tracked in the newest frame", namespace=namespace, registry=reg)
        self.stage_seconds = Histogram(
            "stage_seconds", "Time spent in one pipeline stage for one frame", ["stage"],
            namespace=namespace, registry=reg, buckets=STAGE_BUCKETS_S,
        )  # fmt: skip
        self.events_total = Counter(
            "events", "Face events produced, by type", ["type"], namespace=namespace, registry=reg
        )
        self.events_queued = Gauge(
            "events_queued", "Events waiting for the MQTT broker", namespace=namespace, registry=reg
        )
        self.events_dropped_total = Counter(
            "events_dropped", "Events dropped because the outbox was full", namespace=namespace, registry=reg
        )
        self.events_lost_total = Counter(
            "events_lost", "Undelivered events given up: outbox file damaged or unreadable, or full at stop",
            namespace=namespace, registry=reg,
        )  # fmt: skip
        self.outbox_damaged_total = Counter(
            "outbox_damaged", "Damaged outbox files moved aside at start", namespace=namespace, registry=reg
        )
        self.camera_connected = Gauge(
            "camera_connected", "1 while the camera delivers frames, 0 while it is lost and being reopened",
            namespace=namespace, registry=reg,
        )  # fmt: skip
        self.mqtt_connected = Gauge(
            "mqtt_connected", "1 while connected to the MQTT broker", namespace=namespace, registry=reg
        )
        self.feedback_saved_total = Counter(
            "feedback_saved", "Faces saved by the page's feedback since start (saved again: counted once)",
            namespace=namespace, registry=reg,
        )  # fmt: skip
        self.fps = Gauge(
            "fps", "Frames processed per second, recent average", namespace=namespace, registry=reg
        )
        for (
            stage
        ) in METRIC_STAGES:  # every series exists from the start, so rate() works from the first scrape
            self.stage_seconds.labels(stage=stage)
        for kind in ("new", "update", "end"):
            self.events_total.labels(type=kind)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record how long one stage took for one frame."""
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format (UTF-8 bytes), without the ``_created``
        series of counters and histograms: a start timestamp per series is noise on a dashboard."""
        return generate_latest(_WithoutCreated(self.registry))
