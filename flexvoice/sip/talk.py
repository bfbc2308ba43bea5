"""Talking time of a conference participant, from the level of what they send (no I/O).

The media worker samples the level of what each participant sends into PJSIP's conference
bridge ten times a second and feeds it here. The bridge's scale is logarithmic; measured with
sipp playing its speech capture: silence 0, speech 5-29 (most of it 15-29), the quieter ends
of words 5-12. A talk spurt starts at the first sample at or above THRESHOLD and ends when the
level has stayed below it for HANGOVER seconds (the pauses between words belong to the spurt);
it is counted from one sample period before its first loud sample (the level is of the frames
since then) to its last. The bridge measures only ports that someone hears, so a muted
participant's speech is not counted (the room did not hear it).
"""

from __future__ import annotations

from dataclasses import dataclass

THRESHOLD = 8
HANGOVER = 0.5  # seconds below the threshold that end a spurt
SAMPLE_EVERY = 0.1  # seconds between two samples of one participant
MAX_STEP = 0.5  # a longer gap between samples (the worker was busy) counts as this much


@dataclass(frozen=True)
class TalkChange:
    talking: bool
    seconds: float  # total talking time so far (the spurt that starts counts from now)


@dataclass
class TalkMeter:
    threshold: int = THRESHOLD
    hangover: float = HANGOVER
    seconds: float = 0.0  # of ended spurts
    spurt_start: float | None = None
    last_loud: float = 0.0
    last_sample: float | None = None

    @property
    def talking(self) -> bool:
        return self.spurt_start is not None

    def sample(self, now: float, level: int) -> TalkChange | None:
        """Feed one level sample taken at `now` (monotonic seconds); a change when a spurt
        starts or ends."""
        step = SAMPLE_EVERY if self.last_sample is None else now - self.last_sample
        self.last_sample = now
        if level >= self.threshold:
            self.last_loud = now
            if self.spurt_start is None:
                self.spurt_start = now - min(max(step, 0.0), MAX_STEP)
                return TalkChange(True, round(self.seconds, 2))
            return None
        if self.spurt_start is not None and now - self.last_loud >= self.hangover:
            return self.stop()
        return None

    def stop(self) -> TalkChange | None:
        """End the current spurt (the participant left the room); None when not talking."""
        if self.spurt_start is None:
            return None
        self.seconds += max(0.0, self.last_loud - self.spurt_start)
        self.spurt_start = None
        return TalkChange(False, round(self.seconds, 2))
