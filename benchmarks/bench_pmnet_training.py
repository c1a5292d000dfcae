#!/usr/bin/env python
"""PMANet end to end on the synthetic benchmark on CPU: does PMNet learn, and how long does an epoch take?

The whole pipeline at demo scale (SPEC section 0), every stage through the library's own entry points:

1. the default synthetic benchmark (`pmanet.synthetic.SyntheticConfig()`: 40 training / 20 test identities,
   128 px, 12 cameras), written once and reused;
2. GrabCut pseudo masks of every image (`make_pseudo_masks`);
3. a quickly trained PANet (ResNet-18 from scratch, 128x128, a few epochs) and its part store: refined masks and
   K = 3 k-means part boxes for every image (`fit_panet`, `make_part_store`); with --uniform-parts this stage is
   skipped and the part store holds the GrabCut masks with uniform stripes instead;
4. PMNet (ResNet-18 from scratch, 128x128, K = 3, P x Q = 4 x 8) trained with `fit_pmnet` for a few epochs,
   evaluated after every epoch as PMANet (with Partial Tasks) and PMANet° (without); the untrained network is
   scored too, as epoch 0.

Prints one table row per epoch: epoch | loss | mAP | CMC@1 | mAP° | CMC@1° | train s | eval s, and writes it as
JSON under OUT. There are no ImageNet weights offline, so the networks start from random weights and use a
higher learning rate than the paper's (which fine-tunes ImageNet weights: 1.5e-4 with a 10-epoch warm-up), 1e-3
without warm-up. PMNet trains one epoch per `fit_pmnet` call, resumed from its checkpoint, so that each epoch's
evaluation is timed apart from its training ('train s' is the engine's epoch time, 'eval s' scores PMANet and
PMANet° on the 73 queries x 310 gallery images).

    python benchmarks/bench_pmnet_training.py                       # about 15-20 minutes on 2 quiet cores
    python benchmarks/bench_pmnet_training.py --uniform-parts       # skip PANet
    python benchmarks/bench_pmnet_training.py --epochs 3 --size 96  # shorter
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

import torch

from pmanet.core import set_seed
from pmanet.data import read_dataset
from pmanet.core import markdown_table
from pmanet.grabcut import make_pseudo_masks
from pmanet.panet import PANetConfig, fit_panet, load_panet, panet_train_config
from pmanet.part_inference import make_part_store, part_quality
from pmanet.parts import PartConfig, uniform_boxes, write_part_store
from pmanet.pmnet import PMNet, PMNetConfig
from pmanet.pmnet_training import fit_pmnet, open_part_store, reid_evaluator
from pmanet.store import Store
from pmanet.synthetic import SyntheticConfig, load_ground_truth, make_synthetic
from pmanet.train import TrainConfig


def _stage(name, t0):
    print(f"[{time.perf_counter() - t0:7.1f} s] {name}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(tempfile.gettempdir(), 'pmanet_bench_pmnet'), help='work folder (reused)')
    ap.add_argument('--epochs', type=int, default=5, help='PMNet epochs')
    ap.add_argument('--size', type=int, default=128, help='input height and width (multiple of 16)')
    ap.add_argument('--lr', type=float, default=1e-3, help="PMNet's learning rate (from scratch)")
    ap.add_argument('--panet-epochs', type=int, default=3, help='PANet epochs')
    ap.add_argument('--uniform-parts', action='store_true', help='no PANet: GrabCut masks + uniform stripes')
    ap.add_argument('--workers', type=int, default=1, help='DataLoader workers')
    args = ap.parse_args(argv)
    out, t0, size = Path(args.out), time.perf_counter(), (args.size, args.size)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; work folder {out}")

    root = out/'synthetic'
    if not (root/'name_train.txt').exists(): make_synthetic(root, SyntheticConfig())
    data = read_dataset(root)
    everything = data.train + data.query + data.gallery
    _stage('synthetic benchmark ready', t0)
    make_pseudo_masks(everything, out/'grabcut', workers=0, progress=False)
    _stage(f'GrabCut masks of {len(everything)} images', t0)

    parts_dir = out/('parts_uniform' if args.uniform_parts else f'parts_panet{args.size}')
    if args.uniform_parts:
        gc = Store(out/'grabcut')
        write_part_store(parts_dir, ((r.key, gc[r.key]['mask'], uniform_boxes(3)) for r in everything), {'bench': 'GrabCut masks, uniform boxes'})
    else:
        panet_dir = out/f'panet{args.size}_e{args.panet_epochs}'
        if not (panet_dir/'last.pt').exists():
            set_seed(0)
            fit_panet(data, out/'grabcut', panet_dir, PANetConfig(depth=18, weights=None, image_size=size),
                      panet_train_config(epochs=args.panet_epochs, lr=1e-3, warmup_epochs=0, progress=False, plot=False),
                      P=16, Q=4, num_workers=args.workers)
        _stage(f'PANet trained ({args.panet_epochs} epochs)', t0)
        rep = make_part_store(load_panet(panet_dir/'last.pt'), everything, parts_dir, PartConfig(k=3), source=str(panet_dir/'last.pt'),
                              num_workers=args.workers, progress=False)
        q = part_quality(load_ground_truth(root), [r.key for r in data.query + data.gallery], Store(parts_dir), Store(out/'grabcut'))
        print(f"part store: {rep}; mask IoU vs ground truth: GrabCut {q['grabcut_iou']:.3f}, PANet {q['panet_iou']:.3f}")
    _stage('part store ready', t0)

    cfg = PMNetConfig(depth=18, weights=None, image_size=size)
    tcfg = TrainConfig(epochs=args.epochs, lr=args.lr, warmup_epochs=0, eval_every=0, progress=False, plot=True)
    store = open_part_store(parts_dir, cfg)
    def scored(model, criterion, epoch, loss, train_s):
        "A table row: PMANet and PMANet° scores of `model`, timed."
        t = time.perf_counter()
        ev = reid_evaluator(data, size, store, criterion, num_workers=args.workers)(model, epoch)
        return {'epoch': epoch, 'loss': loss, 'mAP': ev['mAP'], 'CMC@1': ev['CMC@1'], 'mAP°': ev['mAP_no_parts'],
                'CMC@1°': ev['CMC@1_no_parts'], 'train s': train_s, 'eval s': round(time.perf_counter() - t, 1)}
    set_seed(tcfg.seed)
    rows = [scored(PMNet(cfg, data.num_train_pids), cfg.make_criterion(), 0, float('nan'), 0.0)]   # fit_pmnet's initial weights (same seed)
    print(markdown_table(rows, '.3f'), flush=True)
    run = out/f'pmnet{args.size}_{parts_dir.name}'
    if run.exists():
        for f in run.iterdir(): f.unlink()
    for epoch in range(1, args.epochs + 1):                   # one epoch per call, resumed from the checkpoint, scored outside the engine
        set_seed(tcfg.seed)
        trainer = fit_pmnet(data, parts_dir, run, cfg, tcfg.replace(epochs=epoch), num_workers=args.workers, resume='auto')
        rec = trainer.history[-1]
        rows.append(scored(trainer.model, trainer.criterion, epoch, rec['loss'], rec['seconds']))
        print(markdown_table(rows[-1:], '.3f').splitlines()[-1], flush=True)
    _stage(f'PMNet trained ({args.epochs} epochs)', t0)
    print(f"\nPMNet ResNet-18, {args.size}x{args.size}, K=3, P x Q = 4 x 8, {len(trainer.loader)} steps/epoch, lr {args.lr}, "
          f"parts: {'uniform stripes + GrabCut masks' if args.uniform_parts else f'PANet ({args.panet_epochs} epochs)'}")
    print(markdown_table(rows, '.3f'))
    print(f"fusion lambdas (HUL): {trainer.criterion.fusion_weights()}")
    with open(run/'bench.json', 'w') as f: json.dump({'args': vars(args), 'rows': rows}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
