#!/usr/bin/env python
"""PMNet's part crops on a CPU: `torchvision.ops.roi_align` against `pmanet.pmnet.bilinear_crops`.

`part_task_input` crops each of the B x K masked branch maps to its part box and resizes it back to the map's
size. It used `roi_align(sampling_ratio=1, aligned=True)`; it now computes the same numbers as two small
matrix products per box (`bilinear_crops`), whose backward is deterministic on CUDA without torch.compile.
This times both in fp32, at the sizes PMNet meets, in milliseconds per call (median over the repeats, the two
functions interleaved call by call so that a change in machine load falls on both alike):

- tiny: the tiny PMNet of `nbs/21_pmnet.ipynb` (4 images, K = 3, 64 channels, 4 x 4 maps);
- demo: `pmanet demo`'s PMNet (P x Q = 64 images, K = 3, 256 channels, 64 x 64 images: 4 x 4 maps);
- 16 x 3 crops of 64 channels on 4 x 4 and 8 x 8 maps;
- paper: B = 32, K = 3, 512 channels, 256 x 256 images: 16 x 16 maps (paper IV-B).

Columns: forward alone (inference with masks), forward + backward (a training step), the ratio
bilinear_crops / roi_align of the latter (below 1: the matmuls are faster), and the largest difference of the
two outputs.

    python benchmarks/bench_roi_crop.py
    python benchmarks/bench_roi_crop.py --repeats 51
"""

import argparse, statistics, time

import torch
from torchvision.ops import roi_align

from pmanet.core import markdown_table
from pmanet.hardware import cpu_name
from pmanet.pmnet import bilinear_crops

SIZES = {  # name -> (crops B x K, channels, map height = width)
    'tiny (4 x 3, C=64, 4x4)': (12, 64, 4),
    'demo (64 x 3, C=256, 4x4)': (192, 256, 4),
    '16 x 3, C=64, 4x4': (48, 64, 4),
    '16 x 3, C=64, 8x8': (48, 64, 8),
    'paper (32 x 3, C=512, 16x16)': (96, 512, 16),
}


def _roi_align(x, boxes, size):
    "The call `part_task_input` made: box n crops map n (column 0 of the rois)."
    rois = torch.cat([torch.arange(len(x), dtype=x.dtype)[:, None], boxes], 1)
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=1, aligned=True)


def _time(fn, x, boxes, size, backward: bool) -> float:
    "Seconds of one call of `fn` (and its backward)."
    x.grad = None
    start = time.perf_counter()
    out = fn(x, boxes, size)
    if backward: out.backward(torch.ones_like(out))
    return time.perf_counter() - start


def measure(crops: int, channels: int, side: int, repeats: int) -> dict:
    "Median milliseconds of each function at one size, forward and forward + backward."
    g = torch.Generator().manual_seed(0)
    x = torch.randn(crops, channels, side, side, generator=g, requires_grad=True)
    corner = torch.rand(crops, 2, generator=g) * 0.5                   # part boxes: half to all of the map
    boxes = torch.cat([corner, corner + 0.5 + torch.rand(crops, 2, generator=g) * (0.5 - corner)], 1) * side
    fns = {'roi_align': _roi_align, 'bilinear_crops': bilinear_crops}
    times = {(name, bwd): [] for name in fns for bwd in (False, True)}
    for bwd in (False, True):
        for name, fn in fns.items(): _time(fn, x, boxes, (side, side), bwd)   # warm-up
        for _ in range(repeats):
            for name, fn in fns.items(): times[name, bwd].append(_time(fn, x, boxes, (side, side), bwd))
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    with torch.no_grad():
        diff = (_roi_align(x, boxes, (side, side)) - bilinear_crops(x, boxes, (side, side))).abs().max()
    return {'roi_align fwd (ms)': ms['roi_align', False],
            'bilinear_crops fwd (ms)': ms['bilinear_crops', False],
            'roi_align fwd+bwd (ms)': ms['roi_align', True],
            'bilinear_crops fwd+bwd (ms)': ms['bilinear_crops', True],
            'ratio fwd+bwd': ms['bilinear_crops', True] / ms['roi_align', True], 'max diff': f'{diff:.1e}'}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=21, help='timed calls of each function per size (odd)')
    args = p.parse_args()
    print(f'{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n')
    rows = []
    for name, (crops, channels, side) in SIZES.items():
        reps = max(3, args.repeats // 4) if side >= 16 else args.repeats
        rows.append({'size': name, **measure(crops, channels, side, reps)})
    print(markdown_table(rows, floatfmt='.3f'))


if __name__ == '__main__':
    main()
