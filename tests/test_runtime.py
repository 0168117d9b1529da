"""The spare-core rule: two torch threads only while the rest of the machine is idle, same results either way."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from normviz.experiments import init_sweep
from normviz.runs import final
from normviz.runtime import SpareCore, runnable_tasks


def in_thread(fn):
    """Run fn in a fresh thread (torch's thread count is per thread, as in Streamlit's script threads)."""
    out = {}
    t = threading.Thread(target=lambda: out.update(value=fn()))
    t.start()
    t.join()
    return out["value"]


def counts(readings):
    it = iter(readings)
    return lambda: next(it)


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux's /proc/loadavg")
def test_runnable_tasks_sees_the_reader_and_a_busy_process():
    assert runnable_tasks() >= 1
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past its start-up
        readings = []
        for _ in range(50):
            readings.append(runnable_tasks())
            time.sleep(0.005)
    finally:
        busy.kill()
        busy.wait()
    assert max(readings) >= 2  # the reader and the busy loop


def test_two_threads_while_nothing_else_runs_and_back_to_one_when_another_job_starts():
    def body():
        torch.set_num_threads(1)
        # readings include the run itself (1), and its second thread once it has one (2)
        core = SpareCore(window=4, count=counts([1, 2, 2, 3, 3, 3, 1, 1, 1, 1]))
        seen = [core.step() for _ in range(10)]
        during = torch.get_num_threads()
        core.release()
        return seen, during, torch.get_num_threads()

    seen, during, after = in_thread(body)
    # another job from the 4th reading to the 6th: the 4-step average of other runnable threads reaches one
    # half at the 5th step and falls below it again at the 10th
    assert seen == [2, 2, 2, 2, 1, 1, 1, 1, 1, 2]
    assert during == 2 and after == 1


def test_no_reading_keeps_the_threads_the_run_started_with():
    def body():
        torch.set_num_threads(1)
        core = SpareCore(count=lambda: None)
        return [core.step() for _ in range(3)], torch.get_num_threads()

    assert in_thread(body) == ([1, 1, 1], 1)


def test_the_sweep_gives_the_same_numbers_on_one_and_two_threads():
    spec = init_sweep.InitSweepSpec(epochs=2, n_samples=500)

    def sweep(threads):
        def body():
            torch.set_num_threads(1)
            torch.set_flush_denormal(True)
            result = final(init_sweep.run(spec, SpareCore(threads=threads, count=lambda: 1)))
            return np.concatenate([result.bn_acc, result.plain_acc])

        return in_thread(body)

    np.testing.assert_array_equal(sweep(1), sweep(2))
