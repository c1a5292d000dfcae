#!/usr/bin/env python
"""Where does the BoT baseline learn the synthetic benchmark's coarse level? A sweep of its knobs.

Each setting changes the demo's defaults (`pmanet.demo.DemoConfig`): the synthetic set (`synthetic.*`)
or the demo's own fields (training augmentation, epochs, input size, batch). For every setting and seed it
writes the synthetic set, trains the BoT baseline as
the demo does, and scores the normal queries with the ground-truth diagnostics (`pmanet.diagnostics`): mAP,
group mAP (the right near-duplicate group first) and within-group mAP (the right vehicle within its group),
each beside its chance level. Prints one markdown row per (setting, seed) as it is measured, then mean ± std
per setting.

    python benchmarks/lab_sweep.py --seeds 0 1 2 --out /tmp/lab   # every setting below
    python benchmarks/lab_sweep.py --only demo no-erasing-occlusion  # some of them

    python benchmarks/lab_sweep.py --references --only demo   # what the labels and colour alone allow

The synthetic sets are kept under OUT (one per setting and seed) and reused by a later call; the rows are
appended to OUT/results.jsonl (OUT/references.jsonl).
"""

import argparse, json, time
from pathlib import Path

import cv2
import numpy as np

from pmanet.core import markdown_table, read_image
from pmanet.datasets import read_veri776
from pmanet.demo import DemoConfig, mean_std_table
from pmanet.diagnostics import chance_levels, ground_truth_diagnostics, group_diagnostics, identity_groups
from pmanet.evaluate import evaluate_reid
from pmanet.pmnet_training import fit_baseline
from pmanet.hardware import describe_precision, precision_report, usable_cpus
from pmanet.synthetic import load_ground_truth, make_synthetic

NO_AUG = {'erasing_p': 0.0, 'occlusion_p': 0.0}  # flip, pad and crop only
SETTINGS = {  # name -> changes: 'synthetic.FIELD' or a DemoConfig field
    'demo': {},
    'no-erasing-occlusion': NO_AUG,
    'clean-images': {'synthetic.truncation': 0.0, 'synthetic.occlusion': 0.0},
    'more-views': {'synthetic.train_ids': 150, 'synthetic.images_per_id': 10},
    'many-views': {'synthetic.train_ids': 75, 'synthetic.images_per_id': 20},
    'longer': {'baseline_epochs': 18},
    'input-96': {'image_size': (96, 96)},
    'fewer-cameras': {'synthetic.cameras': 6, 'synthetic.cameras_per_id': (2, 4)},
    'no-erasing': {'erasing_p': 0.0},
    'no-occlusion': {'occlusion_p': 0.0},
    'no-aug-more-views': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10},
    'no-aug-longer': {**NO_AUG, 'baseline_epochs': 18},
    'no-aug-96': {**NO_AUG, 'image_size': (96, 96)},
    'no-aug-more-views-96': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                             'image_size': (96, 96)},
    'no-aug-more-ids': {**NO_AUG, 'synthetic.train_ids': 600},
    'no-aug-more-views-128': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                              'image_size': (128, 128)},
    'no-aug-more-views-96-lr3e-3': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                    'image_size': (96, 96), 'lr': 3e-3},
    'no-aug-more-views-longer': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                 'baseline_epochs': 18},
    'tight-crops': {'synthetic.fill': (0.8, 0.95)},
    'no-clutter': {'synthetic.clutter': (0.0, 0.0)},
    'tight-no-clutter': {'synthetic.fill': (0.8, 0.95), 'synthetic.clutter': (0.0, 0.0)},
    'no-aug-tight': {**NO_AUG, 'synthetic.fill': (0.8, 0.95)},
    'no-aug-more-views-tight': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                'synthetic.fill': (0.8, 0.95)},
    'no-aug-more-views-tight-96': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                   'synthetic.fill': (0.8, 0.95), 'image_size': (96, 96)},
    'no-aug-more-views-no-clutter': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                     'synthetic.clutter': (0.0, 0.0)},
    'no-aug-more-views-tight-marks2': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                       'synthetic.fill': (0.8, 0.95), 'synthetic.mark_scale': 2.0},
    'no-aug-more-views-tight-marks2-96': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                          'synthetic.fill': (0.8, 0.95), 'synthetic.mark_scale': 2.0,
                                          'image_size': (96, 96)},
    'no-aug-more-data-tight-marks2': {**NO_AUG, 'synthetic.train_ids': 300, 'synthetic.images_per_id': 10,
                                      'synthetic.fill': (0.8, 0.95), 'synthetic.mark_scale': 2.0},
    'no-aug-many-views-tight-marks2': {**NO_AUG, 'synthetic.train_ids': 75, 'synthetic.images_per_id': 20,
                                       'synthetic.fill': (0.8, 0.95), 'synthetic.mark_scale': 2.0},
    'no-aug-more-views-tight-marks3': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                                       'synthetic.fill': (0.8, 0.95), 'synthetic.mark_scale': 3.0},
    'lab-clean-cameras': {**NO_AUG, 'synthetic.train_ids': 150, 'synthetic.images_per_id': 10,
                          'synthetic.fill': (0.8, 0.95), 'synthetic.mark_scale': 2.0,
                          'synthetic.degradation': 0.0},
}


SCORES = ('mAP', 'group mAP', 'within-group mAP')
CHANCES = tuple(f'chance {k}' for k in SCORES)  # what a random ranking scores on the same split


def demo_config(changes: dict, seed: int) -> DemoConfig:
    "The DemoConfig of a setting."
    cfg = DemoConfig(seed=seed)
    synthetic = {k[10:]: v for k, v in changes.items() if k.startswith('synthetic.')}
    rest = {k: v for k, v in changes.items() if '.' not in k}
    return cfg.replace(synthetic=cfg.synthetic.replace(**synthetic), **rest)


def synthetic_set(root: Path, cfg) -> Path:
    "The synthetic set at `root`, reused when it was made with `cfg`."
    try:
        if load_ground_truth(root).config == cfg: return root
    except (FileNotFoundError, ValueError): pass
    return make_synthetic(root, cfg, workers=usable_cpus(), overwrite=root.exists())


def measure(name: str, seed: int, out: Path) -> dict:
    "Train BoT on one setting and seed; its normal-query scores and the chance levels."
    cfg = demo_config(SETTINGS[name], seed)
    folder, t0 = out / name / f'seed{seed}', time.perf_counter()
    root = synthetic_set(folder / 'synthetic', cfg.synthetic)
    data, truth = read_veri776(root, verbose=False), load_ground_truth(root)
    bot = fit_baseline(data, folder / 'bot', cfg.depth, None, tuple(cfg.image_size),
                       cfg.schedule(cfg.baseline_epochs), cfg.augment(), P=cfg.P, Q=cfg.Q,
                       resume='auto').model
    result = evaluate_reid(bot, data, image_size=tuple(cfg.image_size), num_workers=cfg.workers, device='cpu')
    chance = chance_levels(result.q_pids, result.g_pids, result.q_camids, result.g_camids,
                           identity_groups(truth))
    scores = {'mAP': result.metrics['mAP'], **ground_truth_diagnostics(result, truth)}
    return {'setting': name, 'changes': SETTINGS[name], 'seed': seed, **scores,
            **{f'chance {k}': chance[k] for k in scores},
            'seconds': round(time.perf_counter() - t0, 1),
            'arithmetic': describe_precision(precision_report())}


def _colour_histogram(record, truth, on_vehicle: bool) -> np.ndarray:
    "A 12 x 4 x 4 HSV histogram of an image, of the whole image or of the true vehicle mask only."
    hsv = cv2.cvtColor(read_image(record.path), cv2.COLOR_RGB2HSV)
    mask = truth[record.key]['mask'] if on_vehicle else None
    h = cv2.calcHist([hsv], [0, 1, 2], mask, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return h / max(h.sum(), 1)


def references(name: str, out: Path) -> list:
    """What the test split of a setting allows: rankings by the true labels (ties broken at random) and by a
    hand-made colour histogram, scored like the networks."""
    cfg = demo_config(SETTINGS[name], 0)
    root = synthetic_set(out / name / 'seed0' / 'synthetic', cfg.synthetic)
    data, truth = read_veri776(root, verbose=False), load_ground_truth(root)
    q, g, ids, rng = data.query, data.gallery, truth.identities, np.random.default_rng(0)
    labels = (np.array([r.pid for r in q]), np.array([r.pid for r in g]),
              np.array([r.camid for r in q]), np.array([r.camid for r in g]), identity_groups(truth))
    def by_label(of):
        a, b = np.array([of(ids[r.pid]) for r in q]), np.array([of(ids[r.pid]) for r in g])
        return (a[:, None] != b[None]) + rng.uniform(0, 1e-3, (len(a), len(b)))
    def by_histogram(on_vehicle):
        hq, hg = (np.stack([_colour_histogram(r, truth, on_vehicle) for r in rs]) for rs in (q, g))
        return np.abs(hq[:, None] - hg[None]).sum(-1)
    dists = {'true body + colour': by_label(lambda i: f"{i['body']} {i['colour']}"),
             'true colour': by_label(lambda i: i['colour']), 'true body': by_label(lambda i: i['body']),
             'colour histogram, whole image': by_histogram(False),
             'colour histogram, true vehicle mask': by_histogram(True)}
    return [{'setting': name, 'model': m, **group_diagnostics(d, *labels)} for m, d in dists.items()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0])
    ap.add_argument('--only', nargs='+', choices=list(SETTINGS), help='settings to run (default: all)')
    ap.add_argument('--out', default='lab_sweep', help='work folder (synthetic sets, runs, results.jsonl)')
    ap.add_argument('--references', action='store_true',
                    help='instead of training: score rankings by true labels and by colour histograms')
    args = ap.parse_args(argv)
    out, rows = Path(args.out), []
    out.mkdir(parents=True, exist_ok=True)
    if args.references:
        refs = [row for name in args.only or SETTINGS for row in references(name, out)]
        with open(out / 'references.jsonl', 'a') as f: f.writelines(json.dumps(r) + '\n' for r in refs)
        return print(markdown_table(refs, floatfmt='.3f'))
    for name in args.only or SETTINGS:
        for seed in args.seeds:
            row = measure(name, seed, out)
            rows.append(row)
            with open(out / 'results.jsonl', 'a') as f: f.write(json.dumps(row) + '\n')
            lines = markdown_table([row], floatfmt='.3f').splitlines()
            print('\n'.join(lines if len(rows) == 1 else lines[-1:]), flush=True)
    print('\n' + markdown_table(mean_std_table(rows, ('setting',), SCORES + CHANCES)))


if __name__ == '__main__':
    main()
