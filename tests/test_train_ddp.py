"""`torchrun --nproc-per-node 2` on CPU (gloo): ranks stay identical after every step and match one process.

The file is both the pytest test and the training script it launches, once under torchrun with two processes
(each sees half of every global batch of 8) and once as a single plain process (the whole batch). The model is
an MLP without BatchNorm, and the criterion has a learned weight (HUL-style) whose gradients the engine must
all-reduce itself, since DDP averages only the model's.
"""

import json, os, subprocess, sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, GLOBAL_BATCH, N = 3, 8, 32


def train(run_dir):
    "The toy run (in each subprocess); each forward call first checks that all ranks hold equal parameters."
    import torch.distributed as dist
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler
    from pmanet.train import Trainer, TrainConfig, init_distributed, cleanup_distributed, world_size, rank

    torch.set_num_threads(1)
    init_distributed('gloo')  # no-op in the single-process run
    ws, r = world_size(), rank()

    class Toy(Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x, self.pid = torch.randn(N, 6, generator=g), torch.arange(N) % 4

        def __len__(self):
            return N

        def __getitem__(self, i):
            return {'image': self.x[i], 'pid': self.pid[i], 'index': torch.tensor(i)}

    from toy_loss import (
        WeightedCE as Loss,
    )  # tests/ is on sys.path: the script's folder, or pytest's rootdir insertion

    torch.manual_seed(0)
    model, criterion = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)), Loss()
    checks = 0

    def check_identical():
        nonlocal checks
        v = torch.cat([p.detach().reshape(-1) for p in [*model.parameters(), *criterion.parameters()]])
        if ws > 1:
            vs = [torch.empty_like(v) for _ in range(ws)]
            dist.all_gather(vs, v)
            assert all(torch.equal(vs[0], x) for x in vs[1:]), (
                f'ranks diverged before forward call {checks + 1}'
            )
        checks += 1

    def forward(m, batch):
        check_identical()  # the parameters after the previous step
        return m(batch['image'])

    sampler = DistributedSampler(Toy(), num_replicas=ws, rank=r, shuffle=True, seed=0)
    loader = DataLoader(Toy(), batch_size=GLOBAL_BATCH // ws, sampler=sampler)
    cfg = TrainConfig(
        epochs=EPOCHS,
        lr=1e-2,
        warmup_epochs=2,
        milestones=(2,),
        device='cpu',
        progress=False,
        plot=False,
        amp='off',
    )  # fp32 on every rank: the ranks' results are compared with one process's
    Trainer(model, criterion, loader, run_dir, cfg, forward=forward).fit()
    check_identical()  # after the last step
    if r == 0:
        (Path(run_dir) / 'checks.json').write_text(json.dumps({'checks': checks, 'world_size': ws}))
    cleanup_distributed()


def _run(cmd):
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc):
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out


def test_two_cpu_processes_match_one(tmp_path):
    from pmanet.checkpoint import read_checkpoint
    from pmanet.train import read_metrics

    ddp, single = tmp_path / 'ddp', tmp_path / 'single'
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2']
    p_ddp, p_single = _run([*torchrun, __file__, str(ddp)]), _run([sys.executable, __file__, str(single)])
    _finish(p_ddp)
    _finish(p_single)

    steps = EPOCHS * N // GLOBAL_BATCH
    assert json.loads((ddp / 'checks.json').read_text()) == {'checks': steps + 1, 'world_size': 2}
    # only rank 0 logged: one record per step, not two
    assert [r['step'] for r in read_metrics(ddp / 'metrics.jsonl') if r['kind'] == 'step'] == list(
        range(1, steps + 1)
    )
    a, b = read_checkpoint(ddp / 'last.pt'), read_checkpoint(single / 'last.pt')
    assert len(a['rng']) == 2 and len(b['rng']) == 1  # every rank's random state is kept
    for part in ('model', 'criterion'):
        for k in b[part]:
            assert torch.allclose(a[part][k], b[part][k], rtol=0, atol=1e-5), (
                f'{part}.{k} differs between 2 processes and 1'
            )
    assert not torch.equal(b['criterion']['s'], torch.zeros(1))  # the learned loss weight moved
    # epoch means are over all ranks' steps: equal to the single process's means over the whole batches
    ea = [r['loss'] for r in read_metrics(ddp / 'metrics.jsonl') if r['kind'] == 'epoch']
    eb = [r['loss'] for r in read_metrics(single / 'metrics.jsonl') if r['kind'] == 'epoch']
    assert torch.allclose(torch.tensor(ea), torch.tensor(eb), rtol=0, atol=1e-5), (ea, eb)


if __name__ == '__main__':
    train(sys.argv[1])
    # Leave without C++ static teardown: under CPU load gloo's threads occasionally abort the process at exit
    # ("terminate called without an active exception", exit -6) after all work is written and the group
    # destroyed. The test checks the written results, so a crash during the run itself still fails it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
