"""Which cameras need a key frame, from what ingest archives and refuses (issue 18).

A predicted frame decodes only if every frame back to its key frame reached the archive.
Ingest sees a break first: a predicted frame whose reference is not archived (the packet
was lost on the way, or refused), or a refused frame packet. It then asks the camera for a
key frame (``fleet.services.request_key_frames``: at most one outstanding request per
camera), so that a lost packet costs the frames up to the next key frame and no more.

A missing reference is given a grace period before it counts as lost: with several ingest
processes sharing the stream, the reference may be archived by another one a moment later
(it received the reference before we received the frame after it, and commits it within
about one batch time: the one it is writing). So the grace is ``GRACE_S`` or the longest of
this process's recent batch times, whichever is longer: on a loaded machine another
process lags more, and a request asked for nothing costs a key frame. It stops at
``MAX_GRACE_S``, so that one slow batch does not put every request off past the issue's
second (a process lagging more than that may cost a key frame asked for nothing).

A refused packet is lost for sure and is asked for at once. A camera whose request is
outstanding and that still sends predicted frames is asked again once the request times
out (its answer may have been lost too).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.utils import timezone

from archive.models import Frame
from fleet.models import Device
from fleet.services import (
    KeyFrameReason,
    key_frame_arrived,
    key_request_timeout,
    request_key_frames,
)
from mcucoder import bitstream as bs

log = logging.getLogger(__name__)

GRACE_S = 0.3  # a missing reference may still be archived by another ingest process
RECENT_BATCHES = 20  # ... or as late as the longest of these batch times
MAX_GRACE_S = 0.6  # ... but no later: a lost packet is asked for within a second


@dataclass(frozen=True)
class _Suspect:
    """A predicted frame whose reference was not archived when it was."""

    device: Device
    seq: int  # the predicted frame
    reference: int  # the frame it needs
    since: float  # monotonic: when ingest saw it


class KeyFrameWatch:
    """One ingest process's view of which cameras' streams are broken. ``observe`` each
    archived batch, then ``ask`` (after the batch is acknowledged, and when idle) asks the
    cameras whose break outlived the grace period."""

    def __init__(
        self, grace_s: float = GRACE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self._batch_s: deque[float] = deque(maxlen=RECENT_BATCHES)
        self._suspects: dict[int, list[_Suspect]] = {}  # by device pk, oldest first
        self._now: dict[int, tuple[Device, KeyFrameReason]] = {}  # ask at the next ``ask``

    def batch_took(self, seconds: float) -> None:
        """How long this process took for a batch (taken, archived, acknowledged)."""
        self._batch_s.append(seconds)

    @property
    def grace(self) -> float:
        """Seconds a missing reference is given before it counts as lost."""
        return min(MAX_GRACE_S, max([self.grace_s, *self._batch_s]))

    def observe(
        self, archived: Sequence[tuple[Device, bs.Packet]], refused: Iterable[str] = ()
    ) -> None:
        """A committed batch: its archived frames (arrival order) and the ids of the
        cameras whose frame packets were refused."""
        now = self.clock()
        present = self._archived(
            {(d.pk, p.reference_seq) for d, p in archived if p.frame_type != bs.FRAME_INTRA}
        )
        breaks: dict[int, tuple[Device, bs.Packet]] = {}  # the first since the last key frame
        predicted: dict[int, Device] = {}  # sent predicted frames after its last key frame
        keyed: set[int] = set()
        for device, packet in archived:
            if packet.frame_type == bs.FRAME_INTRA:
                keyed.add(device.pk)
                breaks.pop(device.pk, None)
                predicted.pop(device.pk, None)
                continue
            predicted[device.pk] = device
            if (device.pk, packet.reference_seq) not in present:
                breaks.setdefault(device.pk, (device, packet))
        healed = keyed - set(breaks)
        for pk in healed:  # its stream is whole again: nothing to ask, a request answered
            self._suspects.pop(pk, None)
            self._now.pop(pk, None)
        key_frame_arrived(healed)
        for pk, (device, packet) in breaks.items():
            # every one is kept: an earlier one may turn out a race (its reference archived
            # late by another ingest process) while this one is a real loss
            suspect = _Suspect(device, packet.seq, packet.reference_seq, now)
            self._suspects.setdefault(pk, []).append(suspect)
        for pk, device in predicted.items():
            waiting = pk not in keyed and pk not in breaks and pk not in self._suspects
            if waiting and self._timed_out(device):
                self._now.setdefault(pk, (device, KeyFrameReason.LOST))  # unanswered: again
        for device in Device.objects.filter(device_id__in=set(refused), is_active=True):
            self._now[device.pk] = (device, KeyFrameReason.REFUSED)

    def ask(self) -> list[str]:
        """Ask for the key frames due; returns the ids of the cameras asked."""
        now, grace = self.clock(), self.grace
        due = [s for kept in self._suspects.values() for s in kept if now - s.since >= grace]
        broken = self._still_broken(due)  # a failing database keeps them for the next call
        for pk in {s.device.pk for s in due}:
            left = [s for s in self._suspects[pk] if now - s.since < grace]
            if left:
                self._suspects[pk] = left
            else:
                del self._suspects[pk]
        for suspect in broken:
            self._now.setdefault(suspect.device.pk, (suspect.device, KeyFrameReason.LOST))
        asking, self._now = self._now, {}
        asked: list[str] = []
        try:
            for reason in KeyFrameReason:
                devices = [d for d, r in asking.values() if r is reason]
                if devices:
                    asked += [d.device_id for d in request_key_frames(devices, reason)]
        except Exception:
            self._now = asking | self._now  # asked next time (one outstanding is not asked twice)
            raise
        return asked

    @staticmethod
    def _timed_out(device: Device) -> bool:
        """Its request is outstanding past the timeout (``device`` as this batch read it)."""
        since = device.key_requested_at
        return since is not None and timezone.now() - since >= key_request_timeout(device)

    @staticmethod
    def _archived(pairs: set[tuple[int, int | None]]) -> set[tuple[int, int]]:
        """Which (camera pk, seq) of ``pairs`` are archived."""
        if not pairs:
            return set()
        return set(
            Frame.objects.filter(
                device_id__in={pk for pk, _ in pairs}, seq__in={seq for _, seq in pairs}
            ).values_list("device_id", "seq")
        )

    def _still_broken(self, suspects: list[_Suspect]) -> list[_Suspect]:
        """Those whose reference is still not archived and whose camera sent no key frame
        after them (through another ingest process)."""
        present = self._archived({(s.device.pk, s.reference) for s in suspects})
        broken = []
        for s in suspects:
            if (s.device.pk, s.reference) in present:
                continue
            healed = Frame.objects.filter(
                device_id=s.device.pk, seq__gt=s.seq, frame_type=bs.FRAME_INTRA
            ).exists()
            if not healed:
                broken.append(s)
        return broken
