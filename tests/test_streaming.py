"""Streaming video (streaming.run_stages, ResultStream): stages side by side give the frames in order and the
same Results and drawn frames as one frame after the other; a failing stage is raised in the caller's loop
with every thread stopped; Ctrl-C and an early stop stop the threads too. No timings: speed is measured by
benchmarks/video.py."""
from __future__ import annotations

import signal
import threading
import time
import warnings

import numpy as np
import pytest

import higherhrnet
from higherhrnet.data.synthetic import SyntheticSpec, render_scene
from higherhrnet.inference import NonFiniteOutputError
from higherhrnet.results import Result
from higherhrnet.streaming import run_stages
from higherhrnet.tracking import PoseTracker
from higherhrnet.video import VideoWriter


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stream-")]


def uneven(seconds: dict[int, float]):
    """A stage that sleeps seconds[item] (0 for the others) and tags the item with its own name."""
    def stage(item):
        time.sleep(seconds.get(item if isinstance(item, int) else item[0], 0.0))
        return (item if isinstance(item, int) else item[0], stage.__name__)
    return stage


def test_items_come_out_in_order_whatever_each_stage_costs():
    slow_first = uneven({0: 0.05, 3: 0.03})
    slow_later = uneven({1: 0.04, 5: 0.02})
    got = list(run_stages(range(8), [slow_first, slow_later, lambda pair: pair[0] * 10], queue_size=1))
    assert got == [i * 10 for i in range(8)]
    assert got == list(run_stages(range(8), [slow_first, slow_later, lambda pair: pair[0] * 10], concurrent=False))
    assert list(run_stages([], [slow_first])) == []
    assert not stream_threads()


def test_stages_run_side_by_side():
    """The second stage, holding item 0, waits for the first to start on item 1: only stages that run at the
    same time meet (one after the other, the wait times out)."""
    def run(concurrent: bool, patience: float) -> list:
        second_holds_0, first_started_1 = threading.Event(), threading.Event()

        def first(item):
            if item == 1:
                second_holds_0.wait(patience)
                first_started_1.set()
            return item

        def second(item):
            if item == 0:
                second_holds_0.set()
                return first_started_1.wait(patience)
            return item

        return list(run_stages(range(3), [first, second], concurrent=concurrent))

    assert run(concurrent=True, patience=10) == [True, 1, 2]
    assert run(concurrent=False, patience=0.1) == [False, 1, 2]


@pytest.mark.parametrize("where", ["items", "first stage", "last stage"])
def test_a_failure_is_raised_in_the_callers_loop_and_every_thread_stops(where):
    error = OSError("disk gone")

    def items():
        yield from range(3)
        if where == "items":
            raise error
        yield from range(3, 100)

    def failing(item):
        if item == 4:
            raise error
        return item

    stages = {"items": [lambda i: i], "first stage": [failing, lambda i: i], "last stage": [lambda i: i, failing]}
    seen = []
    with pytest.raises(OSError) as raised:
        for item in run_stages(items(), stages[where], queue_size=2):
            seen.append(item)
    assert raised.value is error
    assert seen == list(range(3 if where == "items" else 4))
    assert not stream_threads()


def test_stopping_early_stops_every_thread():
    results = run_stages(iter(range(1000)), [lambda i: i + 1, lambda i: i * 2])
    assert [next(results) for _ in range(3)] == [2, 4, 6]
    assert stream_threads()
    results.close()
    assert not stream_threads()


def test_ctrl_c_while_waiting_for_a_slow_stage_stops_every_thread():
    started = threading.Event()

    def slow(item):
        started.set()
        time.sleep(0.3)
        return item

    main = threading.main_thread().ident
    threading.Thread(target=lambda: (started.wait(5), signal.pthread_kill(main, signal.SIGINT))).start()
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for item in run_stages(range(100), [slow]):
            seen.append(item)
    assert len(seen) < 3 and not stream_threads()


def test_ctrl_c_while_the_threads_start_stops_those_already_started(monkeypatch):
    # The first stage may be at work before the last thread has started: a Ctrl-C then must stop it too.
    start = threading.Thread.start
    started = []

    def start_then_interrupt(thread):
        if started:
            raise KeyboardInterrupt
        started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        list(run_stages(range(100), [lambda item: item]))
    monkeypatch.undo()
    assert started and not started[0].is_alive() and not stream_threads()


# ---------------------------------------------------------------------------------------------- videos

@pytest.fixture(scope="module")
def predictor():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the synthetic model's note
        return higherhrnet.Predictor("synthetic_w16_256", device="cpu")


@pytest.fixture(scope="module")
def people_video(tmp_path_factory):
    """8 frames of 320 x 240 with three synthetic people sliding right: H.264 (or OpenCV's codec) as a user's."""
    spec = SyntheticSpec(image_size=(320, 240), max_people=4, min_height=108, max_height=216, crowd_prob=0.0)
    scene, _ = render_scene(np.random.default_rng(0), spec)
    with VideoWriter(str(tmp_path_factory.mktemp("video") / "walk"), 10.0, (320, 240)) as writer:
        for i in range(8):
            writer.write(np.roll(scene, 4 * i, axis=1))
    return writer.path


def test_streamed_results_and_drawings_are_those_of_one_frame_at_a_time(predictor, people_video):
    """The stream against the public one-image API: predict_batch on each decoded frame, then the tracker."""
    streamed = list(predictor.stream(people_video))
    tracker = PoseTracker(predictor.keypoints.sigmas_array)
    frames = [result.image for result in predictor.stream(people_video, track=False, concurrent=False)]
    assert len(streamed) == len(frames) == 8
    found = 0
    for frame_index, (result, image) in enumerate(zip(streamed, frames)):
        people = predictor.predict_batch([image])[0]
        ids = tracker.update(np.stack([p.keypoints for p in people]) if people else np.zeros((0, 17, 3)),
                             [p.score for p in people])
        assert result.frame == frame_index and np.array_equal(result.image, image)
        assert len(result) == len(people)
        for mine, theirs in zip(result, people):
            assert np.array_equal(mine.keypoints, theirs.keypoints) and mine.score == theirs.score
        assert result.track_ids == list(ids)
        one_by_one = Result(people, image, predictor.keypoints, track_ids=ids)
        assert np.array_equal(result.plot(0.2), one_by_one.plot(0.2))
        found += len(result)
    assert found >= 16      # several people a frame: the comparison compared ids and orders too
    sequential = list(predictor.stream(people_video, concurrent=False))
    assert [r.to_json() for r in sequential] == [r.to_json() for r in streamed]
    assert not stream_threads()


def test_a_failing_frame_stops_the_stream_with_its_error(predictor, people_video, monkeypatch):
    people_from_maps = predictor._people_from_maps
    calls = []

    def fails_on_the_fourth(image, maps, which):
        calls.append(1)
        if len(calls) == 4:
            raise NonFiniteOutputError("the network's outputs hold NaN or infinite values")
        return people_from_maps(image, maps, which)

    monkeypatch.setattr(predictor, "_people_from_maps", fails_on_the_fourth)
    stream = predictor.stream(people_video)
    seen = []
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite"):
        for result in stream:
            seen.append(result.frame)
    assert seen == [0, 1, 2] and not stream_threads()
    assert not stream.video.capture.isOpened()


def test_closing_a_stream_midway_stops_its_threads_and_closes_the_video(predictor, people_video):
    stream = predictor.stream(people_video)
    iteration = iter(stream)
    assert next(iteration).frame == 0
    stream.close()
    assert not stream_threads() and not stream.video.capture.isOpened()
