"""Play, pause, step and replay a run from its tape: the partial results the service recorded while it
trained, and the final one. A session's playback is only a position on that tape, so a paused run holds no
worker (it trains on, or has finished) and a replay trains nothing: with a fixed seed, restarting from step 0
would compute the same frames again. Streamlit-free; ui draws the buttons."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

MAX_FRAMES = 48  # a tape keeps at most this many partial results, evenly thinned as a long run grows
SPEEDS = {"1×": 1.0, "½×": 0.5, "¼×": 0.25}  # ¼×: a new frame every fourth tick of the live timer


def speed_name(speed: float) -> str:
    return next(name for name, value in SPEEDS.items() if value == speed)


def record(tape: list, result) -> None:
    """Append a result (one at the same progress as the last replaces it: frames are ordered by progress).
    Past MAX_FRAMES, the tape is thinned to about half as many frames, evenly spaced in progress; the first
    and the newest frames stay."""
    if tape and tape[-1].progress >= result.progress:
        tape[-1] = result
        return
    tape.append(result)
    if len(tape) > MAX_FRAMES:  # keep the frame nearest to each of MAX_FRAMES // 2 evenly spaced progress marks
        progress, marks = [r.progress for r in tape], MAX_FRAMES // 2
        first, span = progress[0], progress[-1] - progress[0]
        kept = set()
        for k in range(marks + 1):
            mark = first + span * k / marks
            i = bisect.bisect_left(progress, mark)
            kept.add(min((j for j in (i - 1, i) if 0 <= j < len(tape)), key=lambda j: abs(progress[j] - mark)))
        tape[:] = [tape[i] for i in sorted(kept)]


@dataclass
class Playback:
    """A session's place on one run's tape. `shown` is the progress of the frame on screen (not an index:
    thinning the tape moves indices); None follows the newest frame, as a live run does by default. A paused
    place holds its frame itself, which thinning may drop from the tape."""

    key: str
    shown: float | None = None
    playing: bool = True
    speed: float = 1.0
    ticks: int = 0
    held: object = None

    def index(self, tape: list) -> int:
        """The tape's frame at the place: the newest when following, else the first at or past `shown`."""
        if self.shown is None:
            return len(tape) - 1
        return min(bisect.bisect_left([r.progress for r in tape], self.shown), len(tape) - 1)

    def tick(self, tape: list):
        """One timer tick: advance by the speed (one frame per 1/speed ticks); returns the frame to draw."""
        if not self.playing and self.held is not None:
            return self.held
        if self.playing and self.shown is not None:
            self.ticks += 1
            if self.ticks * self.speed >= 1:
                self.ticks = 0
                self._advance(tape)
        return tape[self.index(tape)]

    def at_end(self, tape: list) -> bool:
        return self.index(tape) == len(tape) - 1

    def pause(self, tape: list) -> None:
        self.held = self.held if not self.playing and self.held is not None else tape[self.index(tape)]
        self.shown, self.playing = self.held.progress, False

    def play(self, tape: list) -> None:
        self.held = None
        if self.shown is None:  # following already
            return
        self.playing, self.ticks = True, 0
        if self.at_end(tape) and self.speed == 1.0:
            self.shown = None  # caught up: follow the newest frame again

    def step(self, tape: list) -> None:
        """Pause, then show the next frame (one chunk of steps)."""
        self.pause(tape)
        self._advance(tape)
        self.held = tape[self.index(tape)]

    def restart(self, tape: list) -> None:
        """Back to the first frame (step 0 of the same seeded run), playing."""
        self.shown, self.playing, self.ticks, self.held = tape[0].progress, True, 0, None

    def set_speed(self, speed: float, tape: list) -> None:
        if speed != 1.0 and self.shown is None:  # a slowed run leaves the live edge at once
            self.shown = tape[self.index(tape)].progress
        self.speed, self.ticks = speed, 0

    def _advance(self, tape: list) -> None:
        i = self.index(tape)
        if self.shown is not None and tape[i].progress <= self.shown:
            i += 1  # past the frame on screen (an exact match)
        if i < len(tape):
            self.shown = tape[i].progress
