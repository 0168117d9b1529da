"""Process-wide torch settings for a small CPU machine shared by several browser sessions."""

import torch

# One intra-op thread per run: Streamlit sessions are threads of one process, and two sessions already
# fill a 2-core machine. `python -m bench --only threads` on the 2-core machine, 2026-11-23, other jobs
# running (load average 5-8), best of 3 (wall time):
#   Activations default, alone:         1 thread 1.97 s, 2 threads 37.7 s (OpenMP waits on busy cores)
#   Activations default, two at once:   1 thread 3.02 s, 2 threads 4.57 s
#   init sweep 4 epochs, alone:         1 thread 1.06 s, 2 threads 1.26 s
#   init sweep 4 epochs, two at once:   1 thread 1.46 s, 2 threads 1.45 s
# Two threads never paid, and with small tensors on a busy machine they can be 19x slower.
THREADS_PER_RUN = 1


def configure_torch() -> None:
    """app.py calls this at the top of every script run: flush-denormal is a per-thread CPU flag."""
    torch.set_num_threads(THREADS_PER_RUN)
    # tiny-init networks produce denormals: a (32, 100, 100) multiply on them took 1.8 ms instead of 0.08 ms
    torch.set_flush_denormal(True)
