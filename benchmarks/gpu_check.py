#!/usr/bin/env python
"""The first thing to run on a rented GPU: the engine's GPU paths at the paper's sizes, timed, in one go.

One process, one markdown table. Every timed row warms up outside its timed region (untimed steps or an
untimed pass, so that DataLoader workers have started and cuDNN's benchmark mode has tuned), times batches
of one fixed shape only, and reports a steady state: the median of its timed repeats. The rows that step the
Trainer on a fixed batch end with one more, untimed step, since the Trainer reads the loss terms on the host
after an epoch's last batch whatever `log_every`.

1. `train step BoT`, `train step PMNet` (12 rows): images/s, ms/step and peak GPU memory of training steps
   of the BoT baseline and PMNet, ResNet-50 from random weights at 256x256, batch 4 x 8 = 32 (paper IV-B-1),
   in fp32, bf16 autocast and fp16 autocast (with the grad scaler), each with and without channels-last. The
   steps run through `pmanet.train.Trainer` (autocast, grad scaler, loss checks, fused Adam, cuDNN benchmark
   mode) on one fixed batch in pinned memory, so that data loading is left out: 5 untimed steps, then the
   median of 4 repeats of 5 steps. The fp16 rows count the steps the scaler skipped (of all the row's steps).
2. `train step PMNet, B x K > 256`: the same for PMNet in bf16 at batch 36 x 8 = 288, B x K = 864 part crops
   (K = PMNetConfig.num_parts = 3), and a correctness check that fails the row: in PMNet's bf16 forward of
   that batch, each image's Partial Task input (`pmnet.part_task_input`: masked maps cropped to their boxes)
   must match the fp32 crops of that image alone (a batch of one, where nothing can pair a box with another
   map) within 1e-2 of the largest value. A crop paired with the wrong map, as when roi_align's map indices
   were rounded in bf16 (integers above 256 are not exact), fails it.
3. `host syncs / step`: operations that make the host wait for the device
   (`pmanet.hardware.count_host_syncs`) per training step of BoT and PMNet at the default precision, counted
   over 25 steps after the warm-up with `log_every=25` (one host read of the loss terms in the window).
   Reported, never failed.
4. `deterministic training`: PMNet (MAM, and residual attention) trained twice for 5 steps from one seed
   with `deterministic=True`; the row fails unless the weights end bit-identical and PyTorch warned of no op
   without a deterministic kernel (pmanet writes pooling, up-sampling and part crops as ops that have one).
5. `torchrun epochs (PMNet)`: `pmanet train` on the synthetic benchmark (`pmanet synthetic`'s default set,
   ground-truth masks with uniform part boxes as the part store) for 3 epochs under `torchrun
   --nproc-per-node 1`: NCCL on a GPU (gloo on a CPU), DDP, the distributed identity sampler, pinned memory,
   the default worker count, evaluation on rank 0 after the last epoch, the checkpoint. Steps/s is the
   median over epochs 2-3 of the run's metrics.jsonl epoch records (`seconds`: the epoch's training loop,
   its DataLoader's worker start included as in every epoch of `pmanet train`; process start-up, NCCL set-up
   and the first epoch's cuDNN tuning left out). The row fails unless the run exits 0 with no warning on
   stderr that `destroy_process_group()` was not called.
6. `feature extraction` as PMANet° (images only) and PMANet (images, masks and boxes): images/s of that
   checkpoint over the benchmark's test images as `pmanet eval` embeds them (JPEG decoding and loading
   included, batch 64), 1536 images a pass (24 full batches) through one loader with persistent workers: one
   untimed pass, then the median of 4.
7. `ONNX export`: PMANet° exported from that checkpoint traced on the device, and the largest difference
   between ONNX Runtime's output and eager PyTorch on the device (`pmanet export` refuses more than 1e-3 on
   the unit embedding); untimed apart from the seconds the row took.

On the GPU machine, from the repository root (about 6 minutes on one H200: an estimate from the sizes above,
not a measurement: ~2 min for the 12 step rows, ~1 min for rows 2-4, ~2 min for the synthetic set, the
torchrun run and its evaluation, ~0.5 min for rows 6-7):

    python benchmarks/gpu_check.py --out gpu_check.md

Without CUDA it runs small (`--cpu-small`, automatic: ResNet-18 at 64x64, batch 2 x 4, one untimed and one
timed step; row 2 at 32x32 with batch 12 x 8 = 96, still 288 crops; syncs counted over 1 step with
`log_every=1`, the CPU default; a tiny synthetic set; 64 images a pass; no fp16 rows: CPUs have no fast fp16
kernels), so that CI keeps it working (tests/test_gpu_check.py); its numbers say nothing about a GPU. A check
that fails is reported in its row and the script exits with status 1 after the table.

    python benchmarks/gpu_check.py --cpu-small             # the CI form

pmanet need not be installed: `PYTHONPATH=. python3 benchmarks/gpu_check.py` runs from a checkout wherever
its requirements are (a PyTorch image with ONNX Runtime and OpenCV typically lacks only fastcore, pure
Python).
"""

import argparse, contextlib, gc, itertools, math, platform, shlex, shutil, statistics, subprocess, sys
import tempfile, time, warnings
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
from torch.utils.data import DataLoader

import pmanet.pmnet
from pmanet.backbone import BoTBaseline
from pmanet.checkpoint import load_model
from pmanet.core import markdown_table
from pmanet.datasets import read_veri776
from pmanet.export import compare_to_eager, export_onnx
from pmanet.features import extract_features, image_forward, parts_forward
from pmanet.gallery import embedder_for
from pmanet.hardware import count_host_syncs, loader_workers, precision_name, precision_report, usable_cpus
from pmanet.loading import AugmentConfig, ReidImageDataset, eval_transform
from pmanet.losses import BoTLoss
from pmanet.parts import uniform_boxes, write_part_store
from pmanet.pmnet import PMNet, PMNetConfig, part_task_input, pmnet_forward
from pmanet.pmnet_training import open_part_store
from pmanet.recipes import PMNET_BATCH, cli_command
from pmanet.synthetic import SyntheticConfig, load_ground_truth, make_synthetic
from pmanet.train import Trainer, TrainConfig, read_metrics

VERI776_IDS = 576  # training identities of VeRi776: the size of the classifiers (paper IV-A)
PRECISIONS = {'fp32': 'off', 'bf16': 'bf16', 'fp16': 'fp16'}  # row label -> TrainConfig.amp
ONNX_TOLERANCE = 1e-3  # what `pmanet export` accepts on the unit embedding
CROP_TOLERANCE = 1e-2  # bf16 vs fp32 part crops, relative to the largest value (bf16 keeps 8 bits)
EVAL_BATCH = 64  # `pmanet eval`'s batch
NOT_DESTROYED = 'destroy_process_group'  # named by the warning of a process group left at exit


@dataclass
class Sizes:
    "What the check runs at."
    depth: int  # ResNet depth
    size: int  # input height and width
    P: int  # identities per batch
    Q: int  # images per identity
    warmup: int  # untimed steps (cuDNN benchmark mode times its algorithms on the first)
    steps: int  # steps per timed repeat
    repeats: int  # timed repeats (the median counts); also the timed passes of feature extraction
    big: tuple  # (P, Q, size) of the bf16 row with B x K > 256
    log_every: int  # the sync rows' steps between host reads of the loss terms, and the steps they count
    synthetic: SyntheticConfig  # the benchmark of the torchrun run
    epochs: int  # of the torchrun run; the first is left out of its steps/s
    eval_images: int  # feature extraction: images a pass, a multiple of EVAL_BATCH


PAPER = Sizes(50, 256, *PMNET_BATCH, warmup=5, steps=5, repeats=4, big=(36, 8, 256), log_every=25,
              synthetic=SyntheticConfig(), epochs=3, eval_images=24 * EVAL_BATCH)
CPU_SMALL = Sizes(18, 64, 2, 4, warmup=1, steps=1, repeats=1, big=(12, 8, 32), log_every=1, epochs=3,
                  eval_images=EVAL_BATCH,
                  synthetic=SyntheticConfig(train_ids=4, test_ids=3, images_per_id=4, cameras=3,
                                            cameras_per_id=(2, 3), size=64))


class FixedBatches:
    """One batch: `warmup` untimed times, `repeats` x `steps` timed ones, and one more untimed (the Trainer
    reads the loss terms on the host after an epoch's last batch, whatever `log_every`). Notes the time (once
    the device has finished) at the start of each repeat and at the end of the last; with `count`, `syncs`
    counts the host syncs of the timed steps."""

    def __init__(self, batch: dict, s: Sizes, device: torch.device, steps: int, repeats: int, count=False):
        self.batch, self.warmup, self.steps, self.repeats = batch, s.warmup, steps, repeats
        self.device, self.count, self.times, self.syncs = device, count, [], None

    def __len__(self):
        return self.warmup + self.steps * self.repeats + 1

    def __iter__(self):
        with contextlib.ExitStack() as stack:
            for i in range(len(self)):
                timed = i - self.warmup  # steps * repeats: the last, untimed batch
                if timed >= 0 and timed % self.steps == 0:
                    self._mark()
                if timed == 0 and self.count:
                    self.syncs = stack.enter_context(count_host_syncs())
                if i == len(self) - 1:
                    stack.close()
                yield self.batch

    def _mark(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        "The median over the repeats of their mean step time."
        return statistics.median((b - a) / self.steps for a, b in itertools.pairwise(self.times))


def _network(name: str, depth: int, size: int):
    "Model, criterion and engine forward of BoT or PMNet at the paper's settings (random weights)."
    if name == 'BoT':
        return BoTBaseline(VERI776_IDS, depth, None), BoTLoss(), None
    cfg = PMNetConfig(depth=depth, weights=None, image_size=(size, size))
    return PMNet(cfg, VERI776_IDS), cfg.make_criterion(), pmnet_forward


def _batch(P: int, Q: int, size: int, parts: bool, pin: bool) -> dict:
    """A P x Q batch of random images (PMNet: with a centred mask and PMNetConfig's K uniform stripes), pinned
    for a GPU."""
    B, g = P * Q, torch.Generator().manual_seed(0)
    batch = {'image': torch.randn(B, 3, size, size, generator=g), 'pid': torch.arange(P).repeat_interleave(Q)}
    if parts:
        K, mask, m = PMNetConfig.num_parts, torch.zeros(B, 1, size, size), size // 8
        mask[..., m:-m, m:-m] = 1
        batch['mask'], batch['boxes'] = mask, torch.from_numpy(uniform_boxes(K)).expand(B, K, 4).clone()
    return {k: v.pin_memory() if pin else v for k, v in batch.items()}


def _free(device: torch.device):
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _fit(name: str, size: int, loader: FixedBatches, s: Sizes, device: torch.device, run: Path, **cfg):
    "A Trainer of `name` (random weights) fitted for one epoch over `loader`; its run folder is removed."
    model, criterion, forward = _network(name, s.depth, size)
    tcfg = TrainConfig(epochs=1, device=device.type, progress=False, plot=False, **cfg)
    _free(device)
    trainer = Trainer(model, criterion, loader, run, tcfg, forward=forward, input_size=(size, size))
    trainer.fit()
    shutil.rmtree(run)  # a ResNet-50 checkpoint with Adam's state is ~0.3-0.6 GB
    return trainer


def _speed(loader: FixedBatches, B: int, device: torch.device, trainer: Trainer) -> dict:
    "The row's steady-state speed, peak memory and what the loss did."
    seconds, loss = loader.seconds_per_step(), trainer.history[-1]['loss']
    return {'images/s': round(B / seconds, 1), 'ms/step': round(1000 * seconds, 1),
            'peak GiB': f'{torch.cuda.max_memory_allocated() / 2**30:.2f}' if device.type == 'cuda' else '-',
            'note': 'loss finite' if math.isfinite(loss) else 'NON-FINITE LOSS'}


def train_step_row(name: str, precision: str, channels_last: bool, s: Sizes, device: torch.device,
                   work: Path) -> dict:
    "Images/s of training steps at steady state, peak memory, and what the loss and the scaler did."
    loader = FixedBatches(_batch(s.P, s.Q, s.size, name == 'PMNet', device.type == 'cuda'), s, device,
                          s.steps, s.repeats)
    trainer = _fit(name, s.size, loader, s, device, work / f'steps-{name}-{precision}-{int(channels_last)}',
                   amp=PRECISIONS[precision], channels_last=channels_last)
    row = _speed(loader, s.P * s.Q, device, trainer)
    if precision == 'fp16':
        # GradScaler starts at 2**16 and halves on each skipped step (it grows only after 2000 good ones)
        skipped = round(math.log2(2.0**16 / trainer.scaler.get_scale()))
        row['note'] += f', {skipped} of {len(loader)} steps skipped by the scaler'
    return row


def _recorded_part_input(model, batch: dict, device: torch.device):
    "The arguments and the result of `part_task_input` in one bf16-autocast forward of PMNet on `batch`."
    seen = {}

    def record(*args):
        seen['args'], seen['out'] = args, part_task_input(*args)
        return seen['out']

    batch = {k: v.to(device) for k, v in batch.items()}
    with mock.patch.object(pmanet.pmnet, 'part_task_input', record), torch.no_grad(), \
            torch.autocast(device.type, dtype=torch.bfloat16):
        pmnet_forward(model, batch)
    return seen['args'], seen['out']


def check_bf16_crops(model, batch: dict, device: torch.device) -> str:
    """Raise unless each image's Partial Task input in PMNet's bf16 forward of `batch` matches the fp32 crops
    of that image alone (a batch of one pairs each box with its own map); what was compared, in words."""
    (features, masks, boxes), got = _recorded_part_input(model, batch, device)
    with torch.no_grad():
        ref = torch.cat([part_task_input(*(t[b:b + 1].float() for t in (features, masks, boxes)))
                         for b in range(len(features))])
    scale = ref.abs().amax().item()
    err = (got.float() - ref).abs().amax().item() / scale
    # the crop a box paired with the previous map would take (as bf16 once rounded map index 257 to 256)
    flat = ref.flatten(0, 1).flatten(1)
    apart = (flat - flat.roll(1, 0)).abs().amax(1).min().item() / scale
    B, K = boxes.shape[:2]
    words = (f"{B * K} crops of {features.dtype} maps vs fp32 per image: max diff {err:.1e}, neighbouring "
             f"boxes' crops >= {apart:.1e} apart (of the largest value)")
    if not err <= CROP_TOLERANCE < apart:
        raise RuntimeError(f"{words}; wanted diff <= {CROP_TOLERANCE:g} < apart")
    return words


def big_batch_row(s: Sizes, device: torch.device, work: Path) -> dict:
    "PMNet's bf16 training steps at a batch with B x K > 256, and its part crops checked against fp32."
    P, Q, size = s.big
    batch = _batch(P, Q, size, True, device.type == 'cuda')
    loader = FixedBatches(batch, s, device, s.steps, s.repeats)
    trainer = _fit('PMNet', size, loader, s, device, work / 'steps-big', amp='bf16')
    row = _speed(loader, P * Q, device, trainer)
    row['note'] += '; ' + check_bf16_crops(trainer.model, batch, device)
    return row


def host_sync_row(name: str, s: Sizes, device: torch.device, work: Path) -> dict:
    """Host syncs per training step at steady state: counted over `s.log_every` steps after the warm-up, with
    one host read of the loss terms among them."""
    loader = FixedBatches(_batch(s.P, s.Q, s.size, name == 'PMNet', device.type == 'cuda'), s, device,
                          s.log_every, 1, count=True)
    trainer = _fit(name, s.size, loader, s, device, work / f'syncs-{name}', log_every=s.log_every)
    n, syncs = s.log_every, loader.syncs
    ops = ', '.join(f'{k} {v / n:.2g}' for k, v in syncs.counts.most_common()) or 'none'
    return {'syncs/step': f'{syncs.total / n:.2f}',
            'note': f"{precision_name(trainer.amp_dtype)}, over {n} step{'s' * (n > 1)}; per step: {ops}"}


def deterministic_row(attention: str, s: Sizes, device: torch.device, work: Path) -> dict:
    """Two PMNet runs of `s.steps` (at least 2) steps from one seed with `deterministic=True`: the row fails
    unless their weights end bit-identical and PyTorch named no op without a deterministic kernel."""
    cfg, batch, states = (PMNetConfig(depth=s.depth, weights=None, image_size=(s.size, s.size),
                                      attention=attention), _batch(s.P, s.Q, s.size, True, False), [])
    steps = max(2, s.steps)
    benchmark = torch.backends.cudnn.benchmark
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for run in range(2):
            torch.manual_seed(0)
            model, criterion = PMNet(cfg, VERI776_IDS), cfg.make_criterion()
            tcfg = TrainConfig(epochs=1, device=device.type, deterministic=True, progress=False, plot=False)
            folder = work / f'deterministic-{attention}-{run}'
            trainer = Trainer(model, criterion, [batch] * steps, folder, tcfg, forward=pmnet_forward,
                              input_size=(s.size, s.size))
            trainer.fit()
            states.append({k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()})
            shutil.rmtree(folder)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = benchmark
    differ = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    named = {str(w.message).split(' does not have a deterministic')[0] for w in caught
             if 'does not have a deterministic' in str(w.message)}
    if differ or named:
        raise RuntimeError(f"{len(differ)} of {len(states[0])} tensors differ ({', '.join(differ[:3])}); "
                           f"ops without a deterministic kernel: {', '.join(sorted(named)) or 'none'}")
    return {'note': f'{steps} steps twice: all {len(states[0])} tensors bit-identical, no op warned'}


def benchmark_set(work: Path, s: Sizes, device: torch.device):
    "The synthetic benchmark and a part store of its true masks with K uniform stripes."
    workers = usable_cpus() if device.type == 'cuda' else 0
    root = make_synthetic(work / 'synthetic', s.synthetic, workers=workers)
    truth, data = load_ground_truth(root), read_veri776(root, verbose=False)
    boxes = uniform_boxes(PMNetConfig.num_parts)
    records = data.train + data.query + data.gallery
    write_part_store(work / 'parts', ((r.key, truth[r.key]['mask'], boxes) for r in records),
                     {'truth': 'uniform'})
    return data, root, work / 'parts'


def torchrun_epochs(root: Path, parts: Path, s: Sizes, device: torch.device, work: Path):
    """`s.epochs` epochs of `pmanet train` (PMNet, evaluated after the last) under torchrun with one process;
    steps/s over the epochs after the first."""
    out = work / 'torchrun'
    line = cli_command('train', root, parts, out, epochs=s.epochs, depth=s.depth, weights='none', size=s.size,
                       ids_per_batch=s.P, images_per_id=s.Q, eval_every=s.epochs, quiet=True,
                       device=device.type)
    # `python -c` rather than the `pmanet` console script, which a checkout on PYTHONPATH does not have
    pmanet_cli = [sys.executable, '-c', 'import sys; from pmanet.cli import main; sys.exit(main())']
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '1',
           '--no-python', *pmanet_cli, *shlex.split(line)[1:]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"exit code {proc.returncode}: {shlex.join(cmd)}\n" + proc.stdout[-3000:]
                           + proc.stderr[-3000:])
    if NOT_DESTROYED in proc.stderr:
        warning = next(w for w in proc.stderr.splitlines() if NOT_DESTROYED in w)
        raise RuntimeError(f"the process group was not destroyed at exit: {warning.strip()}")
    records = read_metrics(out / 'metrics.jsonl')
    setup, epochs = records[0], [r for r in records if r['kind'] == 'epoch']
    steps = [b['step'] - a['step'] for a, b in itertools.pairwise(epochs)]  # of epochs 2, 3, ...
    rate = statistics.median(n / r['seconds'] for n, r in zip(steps, epochs[1:]))
    row = {'images/s': round(rate * s.P * s.Q, 1), 'ms/step': round(1000 / rate, 1),
           'note': f"{setup['distributed']}, {setup['precision']}, {setup['workers']} workers; "
                   f"epochs 2-{len(epochs)}: {'/'.join(map(str, steps))} steps (worker start included); "
                   f"epoch 1: {epochs[0]['step']} steps in {epochs[0]['seconds']:.1f} s; {wall:.0f} s in all "
                   f"with start-up and evaluation (mAP {epochs[-1]['eval/mAP']:.3f}); "
                   "no process group warning"}
    return row, out / 'last.pt'


def feature_rows(checkpoint: Path, data, parts: Path, s: Sizes, device: torch.device):
    """Images/s of `pmanet eval`'s feature extraction, PMANet° and PMANet, over the test images (loading
    included): the median of `s.repeats` passes after an untimed one, through one loader with persistent
    workers."""
    loaded = load_model(checkpoint)
    model = loaded.model.to(device)
    cfg = PMNetConfig.from_dict({**loaded.spec['config'], 'weights': None})
    records = list(itertools.islice(itertools.cycle(data.query + data.gallery), s.eval_images))
    store = open_part_store(parts, cfg, records)
    transform = eval_transform(AugmentConfig(size=tuple(loaded.spec['image_size'])))
    precision, workers = precision_report('auto', device)['inference'], loader_workers(None)
    rows = {}
    for label, parts_store, forward in (('PMANet°', None, image_forward), ('PMANet', store, parts_forward)):
        loader = DataLoader(ReidImageDataset(records, transform, parts_store), batch_size=EVAL_BATCH,
                            num_workers=workers, persistent_workers=workers > 0,
                            pin_memory=device.type == 'cuda')
        times = []
        for _ in range(1 + s.repeats):  # the first pass starts the workers and tunes cuDNN: untimed
            start = time.perf_counter()
            feats, _, _ = extract_features(model, loader, device, forward=forward)
            times.append(time.perf_counter() - start)
        del loader  # its workers stop
        rows[label] = {'images/s': round(len(records) / statistics.median(times[1:]), 1),
                       'note': f"{len(records)} images a pass in full batches of {EVAL_BATCH}, median of "
                               f"{s.repeats} after 1, {workers} workers, {precision}, embeddings "
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
    timed = f"median of {s.repeats} x {s.steps} timed step{'s' * (s.steps > 1)} after {s.warmup} untimed"
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
        row = {'check': label, 'setting': setting, 'images/s': '-', 'ms/step': '-', 'peak GiB': '-',
               'syncs/step': '-', **out}
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
    P, Q, size = s.big
    check('train step PMNet, B x K > 256', f'bf16, {P}x{Q} at {size}x{size}',
          lambda: big_batch_row(s, device, work))
    for name in ('BoT', 'PMNet'):
        check('host syncs / step', f'{name}, log_every {s.log_every}',
              lambda: host_sync_row(name, s, device, work))
    for attention in ('mam', 'residual'):
        check('deterministic training', f'PMNet, {attention} attention',
              lambda: deterministic_row(attention, s, device, work))
    data, root, parts = benchmark_set(work, s, device)
    ckpt = {}

    def epochs():
        row, ckpt['path'] = torchrun_epochs(root, parts, s, device, work)
        return row

    check('torchrun epochs (PMNet)', f"{len(data.train)} images, 1 process", epochs)
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
