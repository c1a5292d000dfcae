#!/usr/bin/env python
"""The CPU fast path, switch by switch: images/s of one training epoch of the demo's BoT baseline and PMNet.

Each network trains one epoch of the demo's synthetic benchmark, at the demo's input size and batch, under
each setting below, in one process, with the settings interleaved round by round so that a change in machine
load falls on all of them alike. Prints images/s (median over the rounds) and the ratio to 'all off' (median
of the round-by-round ratios):

- all off: fp32, NCHW, JPEGs decoded every epoch by 2 loader workers, Adam one tensor at a time (the engine
  before the fast path);
- one switch on at a time: bf16 autocast (forced, even where it is slower), channels-last (forced), the
  decoded-image cache (with the worker count it implies), the fused Adam kernel;
- fast path: what `pmanet demo` uses, every switch on its automatic setting (`TrainConfig()`'s defaults).

PMNet reads its masks and boxes from a part store of the benchmark's true masks with uniform stripes: how fast
an epoch runs does not depend on what the masks say, and this keeps PANet out of the measurement.

    python benchmarks/bench_fast_path.py               # about 10 minutes on 2 quiet cores
    python benchmarks/bench_fast_path.py --rounds 3
    python benchmarks/bench_fast_path.py --settings 'all off,bf16 autocast' --max-iters 4   # fp32 vs bf16

On a CPU without native bf16 (no AVX512-BF16 or AMX) bf16 autocast is emulated and runs many times slower
than fp32: time a few steps there (`--max-iters`) instead of whole epochs.
"""

import argparse, os, statistics, tempfile
from pathlib import Path

import torch

from pmanet.core import markdown_table
from pmanet.datasets import read_veri776
from pmanet.demo import DemoConfig
from pmanet.hardware import cpu_bf16_speedup, cpu_flags, cpu_name, usable_cpus
from pmanet.parts import uniform_boxes, write_part_store
from pmanet.pmnet import PMNetConfig
from pmanet.pmnet_training import fit_baseline, fit_pmnet
from pmanet.synthetic import load_ground_truth, make_synthetic
from pmanet.train import TrainConfig

OFF = dict(amp='off', channels_last=False, image_cache=False, workers=2, fused_optimizer=False)
SETTINGS = {
    'all off': OFF,
    'bf16 autocast': {**OFF, 'amp': 'bf16'},
    'channels-last': {**OFF, 'channels_last': True},
    'image cache': {**OFF, 'image_cache': True, 'workers': None},
    'fused Adam': {**OFF, 'fused_optimizer': True},
    'fast path (demo)': {},
}


def _benchmark_set(root: Path, demo: DemoConfig):
    "The demo's synthetic set and a part store of its true masks with uniform boxes (made once, then reused)."
    try:
        truth = load_ground_truth(root)
    except (FileNotFoundError, ValueError):
        make_synthetic(root, demo.synthetic, overwrite=root.exists())
        truth = load_ground_truth(root)
    data = read_veri776(root, verbose=False)
    if not (root.parent / 'parts' / 'manifest.json').exists():
        boxes = uniform_boxes(demo.num_parts)
        write_part_store(
            root.parent / 'parts',
            ((r.key, truth[r.key]['mask'], boxes) for r in data.train),
            {'truth': 'uniform'},
        )
    return data, root.parent / 'parts'


def _epoch_seconds(
    network: str, data, parts, demo: DemoConfig, setting: dict, run_dir: Path, max_iters: int = 0
) -> tuple[float, int]:
    "Seconds of one training epoch (its first `max_iters` steps when > 0) under `setting`, and its images."
    tc = TrainConfig(
        epochs=1,
        max_iters=max_iters,
        lr=demo.lr,
        warmup_epochs=0,
        milestones=(),
        device='cpu',
        progress=False,
        plot=False,
        **setting,
    )
    size = tuple(demo.image_size)
    if network == 'BoT':
        trainer = fit_baseline(data, run_dir, demo.depth, None, size, tc, P=demo.P, Q=demo.Q)
    else:
        cfg = PMNetConfig(
            depth=demo.depth,
            weights=None,
            image_size=size,
            num_parts=demo.num_parts,
            reduction_dim=demo.reduction_dim,
        )
        trainer = fit_pmnet(data, parts, run_dir, cfg, tc, P=demo.P, Q=demo.Q)
    steps = min(len(trainer.loader), max_iters or len(trainer.loader))
    return trainer.history[0]['seconds'], steps * demo.P * demo.Q


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument(
        '--out', default=os.path.join(tempfile.gettempdir(), 'pmanet_bench_fast_path'), help='work folder'
    )
    ap.add_argument('--rounds', type=int, default=2, help='epochs timed per setting and network')
    ap.add_argument('--networks', default='BoT,PMNet', help='comma-separated: BoT, PMNet')
    ap.add_argument('--settings', default=','.join(SETTINGS), help="comma-separated, 'all off' included")
    ap.add_argument('--max-iters', type=int, default=0, help='time only the first N steps (0: the epoch)')
    args = ap.parse_args(argv)
    settings = {name: SETTINGS[name] for name in ['all off'] + args.settings.split(',') if name in SETTINGS}
    if unknown := set(args.settings.split(',')) - set(SETTINGS):
        ap.error(f"unknown settings {sorted(unknown)}; choose from {', '.join(SETTINGS)}")
    demo, out = DemoConfig(), Path(args.out)
    data, parts = _benchmark_set(out / 'synthetic', demo)
    print(
        f"{cpu_name()}, {usable_cpus()} cores, torch {torch.__version__}, bf16 flags: "
        f"{' '.join(sorted(f for f in cpu_flags() if 'bf16' in f or f.startswith('amx'))) or 'none'}, "
        f"bf16 matmul {cpu_bf16_speedup():.2f}x fp32; "
        f"{len(data.train)} training images, input {tuple(demo.image_size)}, batch {demo.P}x{demo.Q}",
        flush=True,
    )
    rows = []
    for network in args.networks.split(','):
        times = {name: [] for name in settings}
        for r in range(args.rounds):
            names = (
                list(settings)[r % len(settings) :] + list(settings)[: r % len(settings)]
            )  # rotate the order
            for name in names:
                with tempfile.TemporaryDirectory(dir=out) as run:
                    secs, n = _epoch_seconds(
                        network, data, parts, demo, settings[name], Path(run) / 'run', args.max_iters
                    )
                times[name].append(n / secs)
                print(f"  {network} round {r + 1}: {name}: {n / secs:.1f} img/s", flush=True)
        for name, rates in times.items():
            ratio = statistics.median(a / b for a, b in zip(rates, times['all off']))
            rows.append(
                {
                    'network': network,
                    'setting': name,
                    'images/s': round(statistics.median(rates), 1),
                    'x all off': round(ratio, 2),
                }
            )
    print(markdown_table(rows, floatfmt='.2f'))


if __name__ == '__main__':
    main()
