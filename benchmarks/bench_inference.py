#!/usr/bin/env python
"""Benchmark pmanet's deployed inference model: images/s of eager PyTorch, TorchScript and ONNX Runtime on
this CPU.

The model is `pmanet.inference.InferenceModel` (network + fusion into one unit embedding), as `pmanet export`
writes it, for PMANet° (PMNet without Partial Tasks) and the BoT baseline, with random weights (speed does not
depend on the values) and 576 classes (VeRi776's training identities; the classifiers are not run at
inference):

    r50-256   ResNet-50, 256 x 256 input: the paper's setting
    r18-128   ResNet-18, 128 x 128 input: the CPU demo's setting

Eager runs under `torch.inference_mode()`; TorchScript is the traced file loaded back with `torch.jit.load`;
ONNX Runtime runs the ONNX file (opset 17) on its CPU provider with as many intra-op threads as PyTorch uses.
Each measurement is `--warmup` untimed batches, then `--runs` timed batches of `--batch` random preprocessed
images; images/s is the batch size over the median batch time. The largest difference of each backend's
embedding from eager's is printed too. Wall-clock numbers on a shared machine are noisy: re-run on a quiet
one.

    python benchmarks/bench_inference.py                        # both settings (about 5 minutes on 2 cores)
    python benchmarks/bench_inference.py --only r18-128 --runs 10
"""

import argparse, platform, statistics, tempfile, time
from pathlib import Path

import numpy as np
import torch

SETTINGS = {'r50-256': (50, 256), 'r18-128': (18, 128)}


def _cpu_name() -> str:
    try:
        return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown CPU'


def _embedders(depth: int, size: int):
    "(name, Embedder) for PMANet° and BoT at this depth and input size, random weights."
    from pmanet.backbone import BoTBaseline
    from pmanet.embedding import Embedder
    from pmanet.checkpoint import model_spec
    from pmanet.pmnet import PMNet, PMNetConfig

    torch.manual_seed(0)
    pm = PMNet(PMNetConfig(depth=depth, weights=None, image_size=(size, size)), 576)
    bot = BoTBaseline(576, depth, weights=None)
    return [
        ('PMANet°', Embedder(pm, model_spec(pm), device='cpu')),
        ('BoT', Embedder(bot, model_spec(bot, (size, size)), device='cpu')),
    ]


def _time(fn, x, warmup: int, runs: int) -> float:
    "Median seconds of `fn(x)` over `runs` calls after `warmup` calls."
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, emb, batch: int, warmup: int, runs: int, tmp: Path) -> dict:
    "images/s and max |embedding - eager| of the three backends for one model."
    import onnxruntime as ort
    from pmanet.export import export_onnx, export_torchscript, quiet_exporters

    H, W = emb.spec['image_size']
    x = torch.randn(batch, 3, H, W, generator=torch.Generator().manual_seed(0))
    model = emb.inference_model()

    def eager(x):
        with torch.inference_mode():
            return model(x)['embedding']

    t0 = time.perf_counter()
    onnx_path, ts_path = export_onnx(emb, tmp / f'{name}.onnx'), export_torchscript(emb, tmp / f'{name}.pt')
    export_s = time.perf_counter() - t0
    with quiet_exporters():
        ts = torch.jit.load(str(ts_path), map_location='cpu')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(str(onnx_path), opts, providers=['CPUExecutionProvider'])

    def torchscript(x):
        with torch.inference_mode():
            return ts(x)

    def onnxruntime(x):
        return sess.run(['embedding'], {'images': x.numpy()})[0]

    ref = eager(x).numpy()
    row = {'export_s': export_s}
    for backend, fn in (('eager', eager), ('TorchScript', torchscript), ('ONNX Runtime', onnxruntime)):
        out = fn(x)
        row[backend + ' diff'] = float(np.abs(np.asarray(out) - ref).max())
        row[backend] = batch / _time(fn, x, warmup, runs)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--only', nargs='*', choices=list(SETTINGS), default=list(SETTINGS), help='settings to run'
    )
    p.add_argument('--batch', type=int, default=16, help='images per batch')
    p.add_argument('--warmup', type=int, default=2, help='untimed batches first')
    p.add_argument('--runs', type=int, default=5, help='timed batches')
    a = p.parse_args()
    import onnxruntime as ort

    print(
        f"{_cpu_name()}; {torch.get_num_threads()} threads; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}; "
        f"batch {a.batch}, {a.warmup} warm-up + {a.runs} timed batches (median)\n"
    )
    lines = [
        '| model | backbone, input | eager PyTorch img/s | TorchScript img/s | ONNX Runtime img/s '
        '| max abs diff TS / ORT | export s |',
        '|---|---|---|---|---|---|---|',
    ]
    with tempfile.TemporaryDirectory() as d:
        for setting in a.only:
            depth, size = SETTINGS[setting]
            for name, emb in _embedders(depth, size):
                r = bench(f'{setting}-{name}', emb, a.batch, a.warmup, a.runs, Path(d))
                lines.append(
                    f"| {name} | ResNet-{depth}, {size}x{size} | {r['eager']:.1f} | {r['TorchScript']:.1f} "
                    f"| {r['ONNX Runtime']:.1f} | "
                    f"{r['TorchScript diff']:.0e} / {r['ONNX Runtime diff']:.0e} | {r['export_s']:.0f} |"
                )
                print(lines[-1], flush=True)
    print('\n' + '\n'.join(lines))


if __name__ == '__main__':
    main()
