import os

import torch


def pytest_configure(config):
    # Under pytest-xdist each worker runs a notebook in-process; on a 2-core CI machine two workers with one
    # PyTorch thread each use the cores fully, while the default (one thread per core per worker)
    # oversubscribes.
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
