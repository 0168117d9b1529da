"""Process-wide torch settings for a small CPU machine shared by several browser sessions."""

import torch

THREADS_PER_RUN = 1  # each session trains on one thread: two sessions fill a 2-core machine without
                     # oversubscription, which slowed a run 8x in our measurement (see bench/)


def configure_torch() -> None:
    torch.set_num_threads(THREADS_PER_RUN)
    torch.set_flush_denormal(True)  # tiny-init networks produce denormals, which are slow on x86
