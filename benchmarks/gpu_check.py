#!/usr/bin/env python
"""The first thing to run on a rented GPU: the engine's GPU paths at the paper's sizes, timed, in one go.

One process, one markdown table, in under 10 minutes on one H200:

1. Training-step throughput (images/s) of the BoT baseline and PMNet, ResNet-50 from random weights at
   256x256, batch 4 x 8 = 32 (paper IV-B-1), in fp32, bf16 autocast and fp16 autocast (with the grad scaler),
   each with and without channels-last, and the peak GPU memory of each. The steps run through
   `pmanet.train.Trainer` (autocast, grad scaler, loss checks, fused Adam, cuDNN benchmark mode) on one fixed
   batch in pinned memory, so that data loading is left out; the fp16 rows count the steps the scaler skipped.
2. One epoch of the synthetic benchmark (`pmanet synthetic`'s default set, ground-truth masks with uniform
   part boxes as the part store) through `pmanet train` under `torchrun --nproc-per-node 1`: NCCL on a GPU
   (gloo on a CPU), DDP, the distributed identity sampler, pinned memory, the default worker count,
   the evaluation on rank 0 and the checkpoint.
3. Feature extraction throughput of that checkpoint over the benchmark's test images, as `pmanet eval` runs it
   (JPEG decoding and loading included): as PMANet° (images only) and as PMANet (images, masks and boxes).
4. ONNX export of that checkpoint traced on the device, and the largest difference between ONNX Runtime's
   output and eager PyTorch on the device (`pmanet export` refuses more than 1e-3 on the unit embedding).

Without CUDA it runs small (`--cpu-small`, automatic: ResNet-18 at 64x64, batch 2 x 4, one timed step, a tiny
synthetic set, no fp16 rows: CPUs have no fast fp16 kernels), so that CI keeps it working
(tests/test_gpu_check.py); its numbers say nothing about a GPU. A check that fails is reported in its row and
the script exits with status 1 after the table.

    python benchmarks/gpu_check.py --out gpu_check.md      # on the GPU machine, from the repository root
    python benchmarks/gpu_check.py --cpu-small             # the CI form

pmanet need not be installed: `PYTHONPATH=. python3 benchmarks/gpu_check.py` runs from a checkout wherever its
requirements are (a PyTorch image with ONNX Runtime and OpenCV typically lacks only fastcore, pure Python).
"""

import argparse, gc, math, platform, shlex, shutil, subprocess, sys, tempfile, time
from dataclasses import dataclass
from pathlib import Path

import torch

from pmanet.backbone import BoTBaseline
from pmanet.checkpoint import load_model
from pmanet.core import markdown_table
from pmanet.datasets import read_veri776
from pmanet.export import compare_to_eager, export_onnx
from pmanet.features import embed_records
from pmanet.gallery import embedder_for
from pmanet.hardware import precision_report, usable_cpus
from pmanet.losses import BoTLoss
from pmanet.parts import uniform_boxes, write_part_store
from pmanet.pmnet import PMNet, PMNetConfig, pmnet_forward
from pmanet.pmnet_training import open_part_store
from pmanet.recipes import PMNET_BATCH, cli_command
from pmanet.synthetic import SyntheticConfig, load_ground_truth, make_synthetic
from pmanet.train import Trainer, TrainConfig, read_metrics

VERI776_IDS = 576  # training identities of VeRi776: the size of the classifiers (paper IV-A)
PRECISIONS = {'fp32': 'off', 'bf16': 'bf16', 'fp16': 'fp16'}  # row label -> TrainConfig.amp
ONNX_TOLERANCE = 1e-3  # what `pmanet export` accepts on the unit embedding


@dataclass
class Sizes:
    "What the check runs at."
    depth: int  # ResNet depth
    size: int  # input height and width
    P: int  # identities per batch
    Q: int  # images per identity
    warmup: int  # untimed steps (cuDNN benchmark mode times its algorithms on the first)
    steps: int  # timed steps
    synthetic: SyntheticConfig  # the benchmark of the torchrun epoch
    repeats: int  # passes over the test images for feature extraction


PAPER = Sizes(50, 256, *PMNET_BATCH, warmup=5, steps=20, synthetic=SyntheticConfig(), repeats=4)
CPU_SMALL = Sizes(18, 64, 2, 4, warmup=1, steps=1, repeats=1,
                  synthetic=SyntheticConfig(train_ids=4, test_ids=3, images_per_id=4, cameras=3,
                                            cameras_per_id=(2, 3), size=64))


class TimedBatches:
    "One batch `n` times, noting the time before each and after the last, once the device has finished."

    def __init__(self, batch: dict, n: int, device: torch.device):
        self.batch, self.n, self.device, self.times = batch, n, device, []

    def __len__(self):
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            self._mark()
            yield self.batch
        self._mark()

    def _mark(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def _network(name: str, s: Sizes):
    "Model, criterion and engine forward of BoT or PMNet at the paper's settings (random weights)."
    if name == 'BoT':
        return BoTBaseline(VERI776_IDS, s.depth, None), BoTLoss(), None
    cfg = PMNetConfig(depth=s.depth, weights=None, image_size=(s.size, s.size))
    return PMNet(cfg, VERI776_IDS), cfg.make_criterion(), pmnet_forward


def _batch(s: Sizes, parts: bool, pin: bool) -> dict:
    "A P x Q batch of random images (PMNet: with a centred mask and K=3 stripes), pinned for a GPU."
    B, g = s.P * s.Q, torch.Generator().manual_seed(0)
    batch = {'image': torch.randn(B, 3, s.size, s.size, generator=g),
             'pid': torch.arange(s.P).repeat_interleave(s.Q)}
    if parts:
        mask, m = torch.zeros(B, 1, s.size, s.size), s.size // 8
        mask[..., m:-m, m:-m] = 1
        batch['mask'], batch['boxes'] = mask, torch.from_numpy(uniform_boxes(3)).expand(B, 3, 4).clone()
    return {k: v.pin_memory() if pin else v for k, v in batch.items()}


def _free(device: torch.device):
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_step_row(name: str, precision: str, channels_last: bool, s: Sizes, device: torch.device,
                   work: Path) -> dict:
    "Images/s of training steps (after the warm-up), peak memory, and what the loss and the scaler did."
    model, criterion, forward = _network(name, s)
    loader = TimedBatches(_batch(s, name == 'PMNet', device.type == 'cuda'), s.warmup + s.steps, device)
    cfg = TrainConfig(epochs=1, device=device.type, amp=PRECISIONS[precision], channels_last=channels_last,
                      progress=False, plot=False)
    run = work / f'steps-{name}-{precision}-{int(channels_last)}'
    _free(device)
    trainer = Trainer(model, criterion, loader, run, cfg, forward=forward, input_size=(s.size, s.size))
    trainer.fit()
    seconds = (loader.times[-1] - loader.times[s.warmup]) / s.steps
    steps = [r for r in read_metrics(run / 'metrics.jsonl') if r['kind'] == 'step']
    row = {'images/s': round(s.P * s.Q / seconds, 1), 'ms/step': round(1000 * seconds, 1),
           'peak GiB': f'{torch.cuda.max_memory_allocated() / 2**30:.2f}' if device.type == 'cuda' else '-',
           'note': 'loss finite' if all(math.isfinite(r['loss']) for r in steps) else 'NON-FINITE LOSS'}
    if precision == 'fp16':
        skipped = sum(not math.isfinite(r['grad_norm']) for r in steps)
        row['note'] += f', {skipped} of {len(steps)} steps skipped by the scaler'
    del trainer, model, criterion
    shutil.rmtree(run)  # a ResNet-50 checkpoint with Adam's state is ~0.3-0.6 GB
    return row


def benchmark_set(work: Path, s: Sizes, device: torch.device):
    "The synthetic benchmark and a part store of its true masks with K=3 uniform stripes."
    workers = usable_cpus() if device.type == 'cuda' else 0
    root = make_synthetic(work / 'synthetic', s.synthetic, workers=workers)
    truth, data = load_ground_truth(root), read_veri776(root, verbose=False)
    boxes = uniform_boxes(3)
    records = data.train + data.query + data.gallery
    write_part_store(work / 'parts', ((r.key, truth[r.key]['mask'], boxes) for r in records),
                     {'truth': 'uniform'})
    return data, root, work / 'parts'


def torchrun_epoch(root: Path, parts: Path, s: Sizes, device: torch.device, work: Path):
    "One epoch of `pmanet train` (PMNet, evaluated at its end) under torchrun with one process."
    out = work / 'torchrun'
    line = cli_command('train', root, parts, out, epochs=1, depth=s.depth, weights='none', size=s.size,
                       ids_per_batch=s.P, images_per_id=s.Q, eval_every=1, quiet=True, device=device.type)
    # `python -c` rather than the `pmanet` console script, which a checkout on PYTHONPATH does not have
    pmanet = [sys.executable, '-c', 'import sys; from pmanet.cli import main; sys.exit(main())']
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '1',
           '--no-python', *pmanet, *shlex.split(line)[1:]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"exit code {proc.returncode}: {shlex.join(cmd)}\n" + proc.stdout[-3000:]
                           + proc.stderr[-3000:])
    wall = time.perf_counter() - start
    records = read_metrics(out / 'metrics.jsonl')
    setup, epoch = records[0], [r for r in records if r['kind'] == 'epoch'][-1]
    row = {'images/s': round(epoch['step'] * s.P * s.Q / epoch['seconds'], 1),
           'ms/step': round(1000 * epoch['seconds'] / epoch['step'], 1),
           'note': f"{setup['distributed']}, {setup['precision']}, {setup['workers']} workers; "
                   f"{epoch['step']} steps in {epoch['seconds']:.1f} s, {wall:.0f} s in all with start-up "
                   f"and evaluation (mAP {epoch['eval/mAP']:.3f})"}
    return row, out / 'last.pt'


def feature_rows(checkpoint: Path, data, parts: Path, s: Sizes, device: torch.device):
    "Images/s of `pmanet eval`'s feature extraction, PMANet° and PMANet, over the test images (with loading)."
    loaded = load_model(checkpoint)
    model = loaded.model.to(device)
    cfg = PMNetConfig.from_dict({**loaded.spec['config'], 'weights': None})
    records = (data.query + data.gallery) * s.repeats
    store = open_part_store(parts, cfg, records)
    size = tuple(loaded.spec['image_size'])
    precision = precision_report('auto', device)['inference']
    rows = {}
    for label, parts_store in (('PMANet°', None), ('PMANet', store)):
        embed_records(model, records[:64], parts_store, size, device=device)  # warm-up
        start = time.perf_counter()
        feats, _, _ = embed_records(model, records, parts_store, size, device=device)
        seconds = time.perf_counter() - start
        rows[label] = {'images/s': round(len(records) / seconds, 1),
                       'note': f"{len(records)} images, batch 64, {precision}, embeddings "
                               f"{', '.join(feats)}"}
    return rows


def onnx_row(checkpoint: Path, device: torch.device, work: Path):
    "Export PMANet° traced on the device; the largest |ONNX Runtime - eager PyTorch on the device|."
    embedder = embedder_for(str(checkpoint), None, False, device.type)
    start = time.perf_counter()
    path = export_onnx(embedder, work / 'pmanet_o.onnx')
    diff = compare_to_eager(embedder, path)
    worst = max(diff.values())
    ok = diff['embedding'] <= ONNX_TOLERANCE
    return {'note': f"max |onnx - eager| {worst:.1e} ({'within' if ok else 'BEYOND'} {ONNX_TOLERANCE:g}); "
                    f"export and check {time.perf_counter() - start:.0f} s"}, ok


def environment(device: torch.device, s: Sizes) -> str:
    "One line on the machine and the sizes."
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        where = (f"{p.name} ({p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}), "
                 f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                 f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
                 f"conv {torch.backends.cudnn.allow_tf32}")
    else:
        where = f"CPU {platform.processor() or platform.machine()}"
    timed = f"{s.steps} timed step{'s' * (s.steps > 1)} after {s.warmup}"
    return (f"{where}; {usable_cpus()} cores; torch {torch.__version__}; ResNet-{s.depth} at "
            f"{s.size}x{s.size}, batch {s.P}x{s.Q}, {timed}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cpu-small', action='store_true', help='small sizes (automatic without CUDA)')
    ap.add_argument('--work', help='work folder (default: a temporary one, removed at the end)')
    ap.add_argument('--out', help='also write the table (markdown) to this file')
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    device, s = torch.device('cuda' if cuda else 'cpu'), PAPER if cuda and not args.cpu_small else CPU_SMALL
    work = Path(args.work or tempfile.mkdtemp(prefix='pmanet_gpu_check_'))
    work.mkdir(parents=True, exist_ok=True)
    header, rows, failed, t0 = environment(device, s), [], [], time.perf_counter()
    print(header, flush=True)

    def check(label: str, setting: str, fn):
        "Run one check; its row, or its error in the row (the other checks still run)."
        start = time.perf_counter()
        try:
            out = fn() if fn is not None else {'note': 'not run: no fast fp16 kernels on CPUs (CUDA only)'}
        except Exception as e:  # a benchmark reports every failure and goes on
            failed.append(label)
            out = {'note': f'FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ""}'}
            print(f'{label} / {setting} failed:', e, file=sys.stderr, flush=True)
        row = {'check': label, 'setting': setting, 'images/s': '-', 'ms/step': '-', 'peak GiB': '-', **out}
        rows.append(row)
        print(f"{label:<28} {setting:<22} {row['images/s']!s:>8} img/s ({time.perf_counter() - start:.0f} s) "
              f"{row['note']}", flush=True)
        return out

    for name in ('BoT', 'PMNet'):
        for precision in PRECISIONS:
            for cl in (False, True):
                # CPUs run fp16 autocast some 25x slower than fp32: the scaler path is tested in 07_train
                run = cuda or precision != 'fp16'
                check(f'train step {name}', f"{precision}{', channels-last' if cl else ''}",
                      (lambda: train_step_row(name, precision, cl, s, device, work)) if run else None)
    data, root, parts = benchmark_set(work, s, device)
    ckpt = {}

    def epoch():
        row, ckpt['path'] = torchrun_epoch(root, parts, s, device, work)
        return row

    check('torchrun epoch (PMNet)', f"{len(data.train)} images, 1 process", epoch)
    if 'path' in ckpt:
        features = {}

        def extract():
            features.update(feature_rows(ckpt['path'], data, parts, s, device))
            return features['PMANet°']

        check('feature extraction', 'PMANet°', extract)
        if 'PMANet' in features:
            check('feature extraction', 'PMANet', lambda: features['PMANet'])

        def onnx():
            row, ok = onnx_row(ckpt['path'], device, work)
            if not ok:
                raise RuntimeError(row['note'])
            return row

        check(f'ONNX export on {device.type}', 'PMANet°, opset 17', onnx)
    table = f"{header}\n\n{markdown_table(rows, floatfmt='.1f')}\n\n{time.perf_counter() - t0:.0f} s in all"
    print('\n' + table)
    if args.out:
        Path(args.out).write_text(table + '\n')
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        print(f"failed: {', '.join(dict.fromkeys(failed))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
