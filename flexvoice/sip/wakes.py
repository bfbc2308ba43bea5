"""How long a media worker may sleep in PJSIP before its loop must run again (no I/O).

The worker's main thread blocks in `libHandleEvents(ms)`. SIP and RTP packets and commands (the
command reader follows each with a CRLF keep-alive to the worker's own SIP port) end the wait
at once. What nothing wakes it for has to be timed here: the end of a prompt played once (the
conference bridge's clock reports it from another thread, so it waits for this thread's next
wake), recordings whose files PJSIP is closing, originates waiting for a slot pjsua has not
freed yet, objects waiting to be dropped. Waking every 10 ms cost 1.9 % of a core per idle
worker, and 0.7 % more per worker with calls up than sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable

ACTIVE_POLL_MS = 20  # a frame: a prompt is about to end, or a recording's file is closing
CALL_POLL_MS = 1000  # calls up, no prompt about to end
CLEANUP_POLL_MS = 250  # retired players/recorders waiting to be dropped
IDLE_POLL_MS = 5000
SHUTDOWN_POLL_MS = 10
# pjsua reports a call's end before it frees the call's slot (a few ms later, its media torn
# down): an originate in that gap fails with PJ_ETOOMANY although the worker holds fewer calls
# than its limit. It is tried again every RETRY_POLL_MS for up to ORIGINATE_RETRY_FOR seconds.
RETRY_POLL_MS = 5
ORIGINATE_RETRY_FOR = 0.5
# RTP shares the ioqueue the main thread polls, so each packet (50 a second per call) is a
# wake: a context switch, the GIL taken back, a turn of the loop. With BATCH_CALLS calls or
# more up, the loop sleeps a frame after each wake and the next poll takes every packet that
# queued meanwhile (up to 16 in one poll): 4 calls cost 50 wakes a second rather than 200,
# for up to BATCH_MS more on a packet or a command (the jitter buffer absorbs the former).
BATCH_CALLS = 2
BATCH_MS = 20


def wait_ms(
    now: float,
    *,
    calls: bool,
    play_ends: Iterable[float | None],
    closing_files: bool = False,
    retrying: bool = False,
    graveyard: bool = False,
    idle_ms: int = IDLE_POLL_MS,
) -> int:
    """Milliseconds the next wait in PJSIP may last. `play_ends`: when each call's prompt
    (played once) should end, on the clock of `now` (None: nothing due)."""
    if retrying:
        return RETRY_POLL_MS
    if closing_files:
        return ACTIVE_POLL_MS  # PJSIP's clock closes the files
    if calls:
        soonest = CALL_POLL_MS / 1000
        for ends in play_ends:
            if ends is not None:
                soonest = min(soonest, ends - now)
        return max(ACTIVE_POLL_MS, int(soonest * 1000))
    if graveyard:
        return CLEANUP_POLL_MS
    return idle_ms
