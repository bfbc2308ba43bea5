"""Digit collection as a state machine without I/O: feed it digits and the clock, ask it for
its next deadline. The SIP leg waits on that deadline; tests jump to it instead of sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Termination = Literal["terminator", "max_digits", "timeout"]


@dataclass
class DigitCollector:
    max_digits: int
    first_timeout: float  # from start() to the first digit
    inter_digit_timeout: float  # between digits
    terminators: str = "#"
    digits: str = ""
    done: Termination | None = None
    _deadline: float = field(default=0.0, repr=False)

    def start(self, now: float, already: str = "") -> None:
        """Begin waiting at `now`; `already` are digits typed during the prompt (barge-in)."""
        self._deadline = now + self.first_timeout
        for digit in already:
            self.feed(digit, now)
            if self.done:
                return

    def feed(self, digit: str, now: float) -> None:
        if self.done:
            return
        if digit in self.terminators:
            self.done = "terminator"
            return
        self.digits += digit
        if len(self.digits) >= self.max_digits:
            self.done = "max_digits"
            return
        self._deadline = now + self.inter_digit_timeout

    def deadline(self) -> float:
        return self._deadline

    def tick(self, now: float) -> None:
        if not self.done and now >= self._deadline:
            self.done = "timeout"
