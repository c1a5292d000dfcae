#!/usr/bin/env python
"""Would the lab notice a broken PMANet? Plant defects in copies of the model and measure them against it.

Each defect trains PMNet as the study's Exp-7 row does (same seed, data, part store and schedule), with one
thing broken, and scores it on the same queries. Its effect is the paired difference from the study's PMANet
on that seed; a defect is *detected* when the mean effect over seeds is more than twice its std away from 0.

    pmanet study --preset lab --out lab_study                  # first: PMANet and the part stores per seed
    python benchmarks/lab_defects.py lab_study --seeds 0 1 2   # then: the defects, and the table

The defects:
- random part boxes: each image gets K random boxes (fixed per image) instead of PANet's, train and test;
- L_PT detached: the part-transfer loss computed on detached features adds a constant to the loss, so its
  gradients are those of no L_PT at all: the study's "no L_PT" row is this defect, read from it;
- L_PT sign flipped: the network is trained to push g and h apart;
- MAM -> identity: the multi-scale attention module is an identity map: the study's Exp-3 row, read from it;
- Partial Tasks unmasked: the Partial Tasks crop the whole map instead of the masked one.
Runs go to OUT/seedN/defects/NAME (a finished one is reused), the effects to OUT/defects.json.
"""

import argparse, contextlib, json, re, zlib
from unittest import mock
from pathlib import Path

import numpy as np

from pmanet import losses
from pmanet import pmnet_training
from pmanet.checkpoint import load_model
from pmanet.core import atomic_write, markdown_table
from pmanet.datasets import read_veri776
from pmanet.demo import DemoConfig, evaluate_normal_and_occluded, mean_std, reid_scores
from pmanet.evaluate import occluded_query_records
from pmanet.pmnet_training import fit_pmnet
from pmanet.store import Store
from pmanet.study import verdict
from pmanet.synthetic import load_ground_truth

SCORES = ('within-group mAP', 'group mAP', 'mAP')


class RandomPartStore:
    "A part store whose K boxes are random (fixed per image, from its key), with the store's refined masks."
    def __init__(self, store, num_parts: int):
        self.store, self.num_parts = store, num_parts
    def __contains__(self, key: str): return key in self.store
    def __getitem__(self, key: str) -> dict:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        wh = rng.uniform(0.2, 0.6, (self.num_parts, 2))
        x0y0 = rng.uniform(0, 1, (self.num_parts, 2)) * (1 - wh)
        boxes = np.concatenate([x0y0, x0y0 + wh], 1).astype(np.float32)
        return {'mask': self.store[key]['mask'], 'boxes': boxes}


def _random_boxes():
    real = pmnet_training.open_part_store
    def open_random(parts, cfg, records=()): return RandomPartStore(real(parts, cfg, records), cfg.num_parts)
    return mock.patch.object(pmnet_training, 'open_part_store', open_random)


_pt = losses.part_transfer_loss
# name -> (changes to PMNetConfig, a context that plants the defect in training, random boxes at test too)
DEFECTS = {
    'random part boxes': ({}, _random_boxes, True),
    'L_PT sign flipped': ({}, lambda: mock.patch.object(losses, 'part_transfer_loss',
                                                        lambda g, h, gamma: -_pt(g, h, gamma)), False),
    'Partial Tasks unmasked': ({'part_mask': False}, contextlib.nullcontext, False),
}


STUDY_ROWS = {  # defects the study trains anyway: its row is the defective copy
    'L_PT detached': 'no L_PT', 'MAM -> identity': 'Exp-3 no MAM'}
NAMES = ('random part boxes', 'L_PT detached', 'L_PT sign flipped', 'MAM -> identity',
         'Partial Tasks unmasked')  # in the table's order
assert set(NAMES) == {*DEFECTS, *STUDY_ROWS}


def study_scores(seed_dir: Path, row: str = 'Exp-7 PMANet') -> dict:
    "A study row's PMANet scores on one seed, normal and occluded queries."
    study = json.loads((seed_dir / 'study.json').read_text())
    return study['rows'][row]['scores']['PMANet']


def defect_scores(seed_dir: Path, name: str) -> dict:
    "Train (or reuse) the defect `name` on the study seed in `seed_dir`; its scores like `study_scores`."
    if name in STUDY_ROWS: return study_scores(seed_dir, STUDY_ROWS[name])
    changes, plant, random_at_test = DEFECTS[name]
    run = seed_dir / 'defects' / re.sub(r'\W+', '_', name).strip('_')
    if (run / 'scores.json').is_file(): return json.loads((run / 'scores.json').read_text())
    cfg = DemoConfig.load(seed_dir / 'demo.yaml')
    root = seed_dir / 'synthetic'
    data, truth = read_veri776(root, verbose=False), load_ground_truth(root)
    with plant():
        fit_pmnet(data, seed_dir / 'parts', run, cfg.pmnet_config().replace(**changes),
                  cfg.schedule(cfg.pmnet_epochs), cfg.augment(), P=cfg.P, Q=cfg.Q, resume='auto')
    model, _, lambdas = load_model(run / 'last.pt')
    stores = {k: Store(seed_dir / k) for k in ('parts', 'parts_occluded')}
    if random_at_test: stores = {k: RandomPartStore(s, cfg.num_parts) for k, s in stores.items()}
    occluded = occluded_query_records(data.query, seed_dir / 'occluded_query')
    r = evaluate_normal_and_occluded(model, data, occluded, **stores, lambdas=lambdas,
                                     image_size=tuple(cfg.image_size), num_workers=cfg.workers, device='cpu')
    scores = {q: reid_scores(x, truth) for q, x in r.items()}
    with atomic_write(run / 'scores.json', 'w') as f: json.dump(scores, f, indent=1)
    return scores


def defects_table(effects: dict) -> list:
    "One row per defect: the paired effect on each score (mean ± std over seeds) and whether the lab sees it."
    rows = []
    for name, per_seed in effects.items():
        row = {'defect': name, 'seeds': len(per_seed)}
        for k in SCORES: row[f'effect on {k}'] = mean_std([e[k] for e in per_seed])
        main = [e['within-group mAP'] for e in per_seed]
        seen = {k: verdict([e[k] for e in per_seed]) != 'within noise' for k in SCORES}
        row['detected'] = ('yes: ' + ', '.join(k for k in SCORES if seen[k])) if any(seen.values()) else 'no'
        row['within-group, per seed'] = ', '.join(f'{x:+.3f}' for x in main)
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('study', help='a `pmanet study` folder (seedN subfolders)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--only', nargs='+', choices=NAMES, help='defects to plant (default: all)')
    args = ap.parse_args(argv)
    out, effects = Path(args.study), {}
    for name in args.only or NAMES:
        for seed in args.seeds:
            seed_dir = out / f'seed{seed}'
            real, broken = study_scores(seed_dir)['normal'], defect_scores(seed_dir, name)['normal']
            effects.setdefault(name, []).append({k: broken[k] - real[k] for k in SCORES})
            print(f"[defects] {name}, seed {seed}: within-group {broken['within-group mAP']:.3f} "
                  f"(PMANet {real['within-group mAP']:.3f})", flush=True)
    rows = defects_table(effects)
    with atomic_write(out / 'defects.json', 'w') as f:
        json.dump(dict(effects=effects, table=rows), f, indent=1)
    print(markdown_table(rows))


if __name__ == '__main__':
    main()
