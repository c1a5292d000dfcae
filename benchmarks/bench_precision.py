#!/usr/bin/env python
"""bf16 against fp32 feature extraction: do the demo's trained models rank the gallery the same in both?

For each `pmanet demo` folder given (its baseline/last.pt and pmnet/last.pt), the test split is embedded
twice, once in fp32 and once under bf16 autocast (the process-wide switch PMANET_AMP=off / bf16), and scored
with the demo's protocol, for the BoT baseline and PMANet° (PMNet served on images alone, as `pmanet embed`
and the ONNX export run it). Prints each seed's rows as soon as they are measured (mAP of both, their
difference, images/s of each), then the mean and largest |difference| over the seeds. pmanet embeds in bf16 on
a CPU only when this difference stays within 0.002 mAP (`pmanet.hardware.CPU_INFERENCE_AUTOCAST`).

    python benchmarks/bench_precision.py pmanet_demo/seed0 pmanet_demo/seed1 pmanet_demo/seed2

On a CPU without native bf16 (no AVX512-BF16 or AMX) bf16 is emulated: expect its images/s to be many times
lower than fp32's; the rankings are still bf16's.
"""

import argparse, os, statistics, time
from pathlib import Path

from pmanet.checkpoint import load_model
from pmanet.core import markdown_table
from pmanet.datasets import read_veri776
from pmanet.evaluate import evaluate_reid
from pmanet.hardware import AMP_ENV, cpu_flags, cpu_name, usable_cpus

PRECISIONS = {'fp32': 'off', 'bf16': 'bf16'}


def _scores(folder: Path, precision: str) -> dict:
    "mAP of BoT and PMANet° on the demo folder's normal queries, and the images/s of each embedding."
    os.environ[AMP_ENV] = PRECISIONS[precision]
    data = read_veri776(folder / 'synthetic', verbose=False)
    images = len(data.query) + len(data.gallery)
    out = {}
    for name, run in (('BoT baseline', 'baseline'), ('PMANet°', 'pmnet')):
        model, spec, lambdas = load_model(folder / run / 'last.pt')
        lambdas = {k: v for k, v in lambdas.items() if k != 'h'}          # no masks: PMANet° has no h
        start = time.perf_counter()
        res = evaluate_reid(model, data, None, lambdas, tuple(spec['image_size']), device='cpu')
        out[name] = (res.metrics['mAP'], images / (time.perf_counter() - start))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('folders', nargs='+', type=Path, help='pmanet demo folders (one per seed)')
    args = ap.parse_args(argv)
    flags = ' '.join(sorted(f for f in cpu_flags() if 'bf16' in f or f.startswith('amx'))) or 'none'
    print(f"{cpu_name()}, {usable_cpus()} cores, bf16 flags: {flags}", flush=True)
    rows, gaps = [], {}
    for folder in args.folders:
        got = {p: _scores(folder, p) for p in PRECISIONS}
        for name, (fp32_map, fp32_rate) in got['fp32'].items():
            bf16_map, bf16_rate = got['bf16'][name]
            gaps.setdefault(name, []).append(bf16_map - fp32_map)
            rows.append({'model': name, 'run': folder.name, 'mAP fp32': fp32_map, 'mAP bf16': bf16_map,
                         'bf16 - fp32': bf16_map - fp32_map, 'img/s fp32': round(fp32_rate, 1),
                         'img/s bf16': round(bf16_rate, 1)})
        print(markdown_table(rows[-len(got['fp32']):], floatfmt='.4f'), flush=True)
    print(markdown_table(rows, floatfmt='.4f'))
    print(markdown_table([{'model': k, 'runs': len(v), 'mean bf16 - fp32': statistics.mean(v),
                           'largest |bf16 - fp32|': max(map(abs, v))} for k, v in gaps.items()],
                         floatfmt='.4f'))


if __name__ == '__main__':
    main()
