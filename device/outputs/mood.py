"""The room mood: each emotion's share across the faces in view, averaged over a sliding window."""

from __future__ import annotations

from collections import deque


class RoomMood:
    """``observe`` takes the labels of the faces in view now; ``shares`` averages each label's share of
    the faces over the last ``window_s`` seconds (moments with no face in view do not count)."""

    def __init__(self, labels: tuple[str, ...], window_s: float) -> None:
        self.labels = labels
        self.window_s = window_s
        self._samples: deque[tuple[float, list[float]]] = deque()

    def observe(self, now_s: float, emotions: list[str]) -> None:
        """One moment: the emotions of the faces in view at ``now_s`` (seconds, any monotonic clock)."""
        if emotions:
            share = [emotions.count(label) / len(emotions) for label in self.labels]
            self._samples.append((now_s, share))
        while self._samples and self._samples[0][0] < now_s - self.window_s:
            self._samples.popleft()

    def shares(self) -> dict[str, float]:
        """Each label's average share over the window, rounded to 0.01; empty when no face was in view."""
        if not self._samples:
            return {}
        count = len(self._samples)
        return {
            label: round(sum(share[i] for _, share in self._samples) / count, 2)
            for i, label in enumerate(self.labels)
        }

    def dominant(self) -> str | None:
        """The label with the largest share over the window, or None when no face was in view."""
        shares = self.shares()
        return max(shares, key=lambda label: shares[label]) if shares else None
