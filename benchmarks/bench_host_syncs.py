#!/usr/bin/env python
"""Host syncs per training step of the BoT baseline and PMNet: how often the host would wait for a GPU.

On a GPU every read of a device value by the host (`.item()`, `float(t)`, `if t.any():`, `.tolist()`), every
tensor whose shape depends on its data (`x[mask]`, `nonzero`) and every tensor built from Python values inside
the step stalls the host until the device has caught up. `pmanet.hardware.count_host_syncs` counts those
operations on any device, so this runs on a CPU: ResNet-18 from random weights at 64x64, one fixed batch of
4 identities x 2 images, `STEPS` optimiser steps through `pmanet.train.Trainer` in fp32, for each `log_every`
given (the steps between the engine's host reads of the loss terms). Prints one markdown table: syncs per step
and what they were.

    python benchmarks/bench_host_syncs.py                 # log_every 1 (a CPU's default) and 25 (a GPU's)

On a CPU PMNet checks its part boxes on the host every step (free there, skipped on a GPU, where the part
store has checked them already): one `_local_scalar_dense` per step that a GPU does not have.
"""

import argparse, tempfile
from pathlib import Path

import torch

from pmanet.backbone import BoTBaseline
from pmanet.core import markdown_table
from pmanet.hardware import count_host_syncs
from pmanet.losses import BoTLoss
from pmanet.parts import uniform_boxes
from pmanet.pmnet import PMNet, PMNetConfig, pmnet_forward
from pmanet.train import Trainer, TrainConfig

STEPS = 25  # optimiser steps counted per row
P, Q, K, IDS = 4, 2, 3, 4


def fixed_batch() -> dict:
    "One P x Q batch of random 64x64 images, with full masks and K uniform part boxes."
    g, B = torch.Generator().manual_seed(0), P * Q
    return {'image': torch.randn(B, 3, 64, 64, generator=g), 'pid': torch.arange(P).repeat_interleave(Q),
            'mask': torch.ones(B, 1, 16, 16),
            'boxes': torch.from_numpy(uniform_boxes(K)).expand(B, K, 4).clone()}


def count(name: str, log_every: int) -> tuple[float, dict]:
    "Host syncs per step over one epoch of STEPS steps (its end of epoch included), by operation."
    torch.manual_seed(0)
    if name == 'PMNet':
        cfg = PMNetConfig(depth=18, weights=None, num_parts=K, image_size=(64, 64))
        model, criterion, forward = PMNet(cfg, IDS), cfg.make_criterion(), pmnet_forward
    else: model, criterion, forward = BoTBaseline(IDS, 18, None), BoTLoss(), None
    cfg = TrainConfig(epochs=1, progress=False, plot=False, amp='off', channels_last=False,
                      log_every=log_every)
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(model, criterion, [fixed_batch()] * STEPS, Path(run) / 'run', cfg, forward=forward)
        with count_host_syncs() as syncs: trainer.fit()
    return syncs.total / STEPS, dict(syncs.counts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--log-every', type=int, nargs='+', default=[1, 25], help='TrainConfig.log_every values')
    args = ap.parse_args(argv)
    rows = []
    for name in ('BoT', 'PMNet'):
        for every in args.log_every:
            per_step, counts = count(name, every)
            ops = ', '.join(f'{k} {v}' for k, v in sorted(counts.items()))
            rows.append({'model': name, 'log_every': every, 'syncs / step': round(per_step, 2),
                         f'operations over {STEPS} steps': ops})
    print(markdown_table(rows, floatfmt='.2f'))


if __name__ == '__main__':
    main()
