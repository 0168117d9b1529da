"""Play, pause, step and replay over a run's tape (normviz.playback), and the tape the run service records."""

from __future__ import annotations

from dataclasses import dataclass

from test_service import finish

from normviz import playback
from normviz.experiments import activations
from normviz.runs import result_bytes
from normviz.service import RunService


@dataclass
class Frame:
    progress: float


def tape_of(*progress: float) -> list:
    return [Frame(p) for p in progress]


def ticks(place, tape, n: int) -> list[int]:
    """The tape's index of the frame each of n ticks draws."""
    return [tape.index(place.tick(tape)) for _ in range(n)]


def test_a_live_place_follows_the_newest_frame_until_paused():
    tape, place = tape_of(0.1, 0.2), playback.Playback("k")
    assert ticks(place, tape, 1) == [1]
    place.pause(tape)
    tape += tape_of(0.3, 0.4)  # the run trains on
    assert ticks(place, tape, 3) == [1, 1, 1] and place.shown == 0.2


def test_step_shows_the_next_frame_and_stays_paused():
    tape, place = tape_of(0.1, 0.2, 0.3), playback.Playback("k")
    place.pause(tape)
    place.restart(tape)
    place.step(tape)
    assert not place.playing and ticks(place, tape, 2) == [1, 1]


def test_play_resumes_from_the_held_frame_one_frame_a_tick_then_follows_again():
    tape, place = tape_of(0.1, 0.2, 0.3, 0.4), playback.Playback("k")
    place.restart(tape)
    place.pause(tape)
    place.play(tape)
    assert ticks(place, tape, 3) == [1, 2, 3]
    place.play(tape)  # at the newest frame at 1×: it follows the run's newest frame again
    tape += tape_of(0.6)
    assert place.shown is None and ticks(place, tape, 1) == [4]


def test_a_quarter_speed_shows_a_new_frame_every_fourth_tick():
    tape, place = tape_of(0.1, 0.2, 0.3, 0.4), playback.Playback("k")
    place.set_speed(playback.SPEEDS["¼×"], tape)  # leaves the live edge at the frame on screen
    place.restart(tape)
    assert ticks(place, tape, 8) == [0, 0, 0, 1, 1, 1, 1, 2]


def test_restart_goes_back_to_the_first_frame_playing():
    tape, place = tape_of(0.1, 0.5, 1.0), playback.Playback("k")
    place.pause(tape)
    place.restart(tape)
    assert place.playing and place.index(tape) == 0


def test_a_long_tape_is_thinned_evenly_and_keeps_its_newest_frame_and_its_order():
    tape: list = []
    for step in range(1, 201):
        playback.record(tape, Frame(step / 200))
    progress = [f.progress for f in tape]
    assert len(tape) <= playback.MAX_FRAMES and progress[-1] == 1.0 and progress == sorted(progress)
    assert progress[0] < 0.1 and max(b - a for a, b in zip(progress, progress[1:])) <= 0.1


def test_a_frame_at_the_same_progress_replaces_the_last_one():
    tape = tape_of(0.5, 1.0)
    final = Frame(1.0)
    playback.record(tape, final)
    assert len(tape) == 2 and tape[-1] is final


def test_a_paused_place_keeps_its_frame_when_thinning_drops_it_and_play_goes_on_from_there():
    tape = [Frame(i / 100) for i in range(1, 49)]
    place = playback.Playback("k")
    place.restart(tape)
    place.step(tape)
    held = place.tick(tape)
    assert held.progress == 0.02
    playback.record(tape, Frame(0.5))  # 49 frames: thinned to about half
    assert held not in tape and place.tick(tape) is held
    place.play(tape)
    assert place.tick(tape).progress > 0.02 and place.tick(tape).progress < 0.2


def test_the_service_records_a_runs_partial_results_then_its_final_one():
    service = RunService(1, processes=False, cache=None)
    try:
        spec = activations.ActivationsSpec(steps=60, probe_every=10, seed=21)
        handle = finish(service.submit(spec, activations.run, follower="t"))
        tape = service.tape(handle.key)
        steps = [r.steps_done for r in tape]
        assert steps == sorted(set(steps)) and steps[-1] == 60 and tape[-1] is service.result(handle.key)
        assert len(tape) >= 2 and service.tape("nobody-trained-this") == []
    finally:
        service.shutdown()


def test_finished_tapes_are_bounded_in_bytes_newest_kept(monkeypatch):
    service = RunService(1, processes=False, cache=None)
    try:
        keys = []
        for seed in (22, 23):
            spec = activations.ActivationsSpec(steps=60, probe_every=10, seed=seed)
            keys.append(finish(service.submit(spec, activations.run, follower="t")).key)
            if seed == 22:  # room for one tape only
                first = sum(map(result_bytes, service.tape(keys[0])))
                monkeypatch.setattr("normviz.service.TAPE_BYTES", first * 3 // 2)
        assert service.tape(keys[0]) == [] and len(service.tape(keys[1])) >= 2
    finally:
        service.shutdown()
