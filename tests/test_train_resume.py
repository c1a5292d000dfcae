"""A training run killed with SIGKILL in the middle of an epoch and resumed ends bit-identical to an
uninterrupted run.

The file is both the pytest test and the training script it launches (`python test_train_resume.py RUN_DIR
...`). The toy run uses every source of randomness a Re-ID run has: a shuffled DataLoader (torch's global
generator), augmentations drawn from NumPy and Python's `random`, dropout, BatchNorm buffers, and a criterion
with a learned weight (HUL-style), so that a resume which forgot any of them would not end bit-identical.
"""

import os, signal, subprocess, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, BATCHES = 3, 8  # 32 samples, batch 4
HANG_AT = BATCHES + 3  # forward call 11: the 3rd batch of epoch 2, after the epoch-1 checkpoint


def train(run_dir, hang_at=0):
    "The toy run (in the subprocess); with `hang_at` it signals and stops moving at that forward call."
    import random
    import numpy as np
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from pmanet.train import Trainer, TrainConfig

    torch.set_num_threads(1)

    class Toy(Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x, self.pid = torch.randn(32, 3, 8, 8, generator=g), torch.arange(32) % 4

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            x = self.x[i] + 0.1 * torch.from_numpy(np.random.randn(3, 8, 8).astype(np.float32))
            if random.random() < 0.5:
                x = x.flip(-1)
            return {'image': x, 'pid': self.pid[i], 'camid': torch.tensor(0), 'index': torch.tensor(i)}

    from toy_loss import (
        WeightedCE as Loss,
    )  # tests/ is on sys.path: the script's folder, or pytest's rootdir insertion

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(8, 4),
    )
    calls = 0

    def forward(m, batch):
        nonlocal calls
        calls += 1
        if calls == hang_at:
            (Path(run_dir) / 'HANGING').touch()
            time.sleep(120)  # the test kills us here
        return m(batch['image'])

    cfg = TrainConfig(
        epochs=EPOCHS,
        lr=1e-2,
        warmup_epochs=2,
        milestones=(2,),
        seed=0,
        deterministic=True,
        amp='off',
        device='cpu',
        progress=False,
        plot=False,
    )
    loader = DataLoader(Toy(), batch_size=4, shuffle=True)
    Trainer(model, Loss(), loader, run_dir, cfg, forward=forward, resume='auto').fit()


def _run(run_dir, hang_at=0, **kw):
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.Popen(
        [sys.executable, __file__, str(run_dir), str(hang_at)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _finish(proc):
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def _tensors(obj, prefix=''):
    "Every tensor in a nested checkpoint structure, by path."
    if torch.is_tensor(obj):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    return {k: v for key, val in items for k, v in _tensors(val, f'{prefix}/{key}').items()}


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    from pmanet.checkpoint import read_checkpoint
    from pmanet.train import read_metrics

    ref, killed = tmp_path / 'uninterrupted', tmp_path / 'killed'
    ref_proc = _run(ref)  # runs beside the killed one: the machine has 2 cores
    proc = _run(killed, HANG_AT)
    deadline = time.time() + 60
    while not (killed / 'HANGING').exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, 'the run never reached epoch 2'
        time.sleep(0.05)
    # inside epoch 2, after the epoch-1 checkpoint and two logged steps of epoch 2
    assert read_checkpoint(killed / 'last.pt')['epoch'] == 1
    assert [r['step'] for r in read_metrics(killed / 'metrics.jsonl') if r['epoch'] == 2] == [9, 10]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    _finish(_run(killed))  # resume='auto' continues from last.pt
    _finish(ref_proc)

    a, b = read_checkpoint(ref / 'last.pt'), read_checkpoint(killed / 'last.pt')
    assert (a['epoch'], a['step']) == (b['epoch'], b['step']) == (EPOCHS, EPOCHS * BATCHES)
    assert a['scheduler'] == b['scheduler']
    for part in ('model', 'criterion', 'optimizer', 'rng'):
        ta, tb = _tensors(a[part]), _tensors(b[part])
        assert ta.keys() == tb.keys() and ta, part
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f'{part}{k} differs after resume'
    # the log reads as one uninterrupted run: the killed epoch's partial records were dropped and redone (the
    # resumed run adds a second 'setup' record, which says how it ran)
    strip = lambda recs: [
        {k: v for k, v in r.items() if k != 'seconds'} for r in recs if r['kind'] != 'setup'
    ]
    ma, mb = read_metrics(ref / 'metrics.jsonl'), read_metrics(killed / 'metrics.jsonl')
    assert [r['step'] for r in mb if r['kind'] == 'step'] == list(range(1, EPOCHS * BATCHES + 1))
    assert strip(ma) == strip(mb)


if __name__ == '__main__':
    train(sys.argv[1], int(sys.argv[2]))
