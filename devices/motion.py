"""Motion-triggered capture as an MCU would do it: difference of tiny grey thumbnails.

An MCU cannot afford optical flow; it subsamples the sensor image to a few hundred pixels,
compares with the previous thumbnail and wakes the radio only when enough of them changed
by more than the sensor noise. Integer arithmetic on a strided view costs well under a
millisecond here and a few hundred microseconds on a Cortex-M7.
"""

from __future__ import annotations

import numpy as np


class MotionDetector:
    """``triggered(frame, now)`` is True when the scene changed since the previous frame,
    and at least every ``keyframe_s`` seconds so that a still scene still shows up."""

    def __init__(
        self,
        thumb: int = 32,
        pixel_threshold: int = 18,
        min_changed: float = 0.004,
        keyframe_s: float = 60.0,
    ) -> None:
        self.thumb = thumb
        self.pixel_threshold = pixel_threshold  # grey levels: well above sensor noise
        self.min_changed = min_changed  # fraction of thumbnail pixels that must change
        self.keyframe_s = keyframe_s
        self._previous: np.ndarray | None = None
        self._last_sent = -float("inf")
        self.last_changed = 0.0

    def thumbnail(self, frame: np.ndarray) -> np.ndarray:
        """Strided integer luma (R + 2G + B) / 4, about ``thumb`` pixels on the long side."""
        step = max(1, max(frame.shape[:2]) // self.thumb)
        rgb = frame[::step, ::step].astype(np.int16)
        return (rgb[..., 0] + 2 * rgb[..., 1] + rgb[..., 2]) >> 2

    def triggered(self, frame: np.ndarray, now: float) -> bool:
        thumb = self.thumbnail(frame)
        previous, self._previous = self._previous, thumb
        if previous is None or previous.shape != thumb.shape:
            self.last_changed = 1.0
        else:
            self.last_changed = float((np.abs(thumb - previous) > self.pixel_threshold).mean())
        if self.last_changed >= self.min_changed or now - self._last_sent >= self.keyframe_s:
            self._last_sent = now
            return True
        return False
