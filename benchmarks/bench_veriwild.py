#!/usr/bin/env python
"""Benchmark streamed evaluation and exact k-reciprocal re-ranking at VeRi-Wild-large size, and check them
against the dense computation on a cut that fits in memory.

VeRi-Wild's large test set (Lou et al., CVPR 2019) has 10,000 queries (one per identity) against 128,517
gallery images. Synthetic features stand in for a model's (the speed and memory of evaluation and re-ranking
do not depend on where the features come from): an identity centre plus a camera bias plus noise,
L2-normalised, 2048-d like a ResNet-50 embedding, 174 cameras with 8 visited per identity, so that queries
have same-camera junk in the gallery and re-ranking changes the ranking. Distances: Euclidean
(`pmanet.reranking.euclidean_distance`, Zhong et al.'s choice and the re-ranking default; on unit vectors it
ranks as the cosine distance does).

Each measurement runs in its own subprocess, so every peak is its own: the peak resident memory (VmHWM, reset
just before the measured call) is reported whole and above what the process held before the call (Python,
torch, the features). Times are wall-clock of the measured call only.

    python benchmarks/bench_veriwild.py                       # full size (~20 min on 2 free cores)
    python benchmarks/bench_veriwild.py --scale 0.1 0.2       # cheap runs, and a full-size extrapolation
    python benchmarks/bench_veriwild.py --parity              # 2,000 x 20,000: streamed vs dense, to 1e-6
    python benchmarks/bench_veriwild.py --parity --literal    # ... and Zhong's literal dense code (~10 GB)

`--scale s` multiplies the numbers of identities, queries and gallery images by s (dimension and cameras
stay): the N x N and Q x G work then scales as s^2, the rest as s. With two or more scales the script fits
time = a s^2 + b s and memory = c + d s and prints the values at s = 1.
"""

import argparse, json, os, resource, subprocess, sys, time

import numpy as np

# the memory probes and the literal reference codes of the VeRi776 / VehicleID benchmark, next to this file
from bench_eval import _mem, _reset_peak, eval_market1501_reference, re_ranking_reference

LARGE = dict(ids=10_000, queries=10_000, gallery=128_517)
CUT = dict(ids=2_000, queries=2_000, gallery=20_000)
DIM, CAMS, VISITED, NOISE, CAM_BIAS = 2048, 174, 8, 3.5, 0.3


def features(ids, queries, gallery, seed=0, dim=DIM):
    """Unit features with identity structure: (q, g) float32 tensors and their ids and cameras. One query per
    identity; the gallery spreads evenly over the identities, in random order."""
    import torch

    rng = np.random.default_rng(seed)
    q_pids = np.arange(queries) % ids
    g_pids = rng.permutation(np.arange(gallery) % ids)
    visits = rng.integers(0, CAMS, (ids, VISITED))  # the cameras each identity passes
    q_cams, g_cams = (visits[p, rng.integers(0, VISITED, len(p))] for p in (q_pids, g_pids))
    gen = torch.Generator().manual_seed(seed)
    centres, bias = torch.randn(ids, dim, generator=gen), CAM_BIAS * torch.randn(CAMS, dim, generator=gen)

    def make(pids, cams):
        out = torch.empty(len(pids), dim)
        for s in range(0, len(pids), 8192):
            p, c = torch.from_numpy(pids[s : s + 8192]), torch.from_numpy(cams[s : s + 8192])
            x = centres[p] + bias[c] + NOISE * torch.randn(len(p), dim, generator=gen)
            out[s : s + len(p)] = x / x.norm(dim=1, keepdim=True)
        return out

    return make(q_pids, q_cams), make(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def _sizes(scale):
    return {k: max(2, round(v * scale)) for k, v in LARGE.items()}


def _metrics(cmc, mAP, mINP):
    return {'mAP': float(mAP), 'CMC@1': float(cmc[0]), 'CMC@5': float(cmc[4]), 'mINP': float(mINP)}


def _child(what, scale, block, chunk, progress):
    "One measurement in this (fresh) process; prints a JSON line."
    import torch
    from pmanet.metrics import distance_blocks, evaluate_rank
    from pmanet.reranking import euclidean_distance, re_ranking_blocks

    q, g, qp, gp, qc, gc = features(**_sizes(scale))
    before, _ = _mem()
    _reset_peak()
    cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # user + system seconds, all threads
    t, c = time.perf_counter(), cpu()
    if what == 'eval':
        res = evaluate_rank(distance_blocks(q, g, euclidean_distance, block, progress), qp, gp, qc, gc)
        stages = {}
    else:
        blocks = re_ranking_blocks(q, g, chunk=chunk, block=block, progress=progress)  # steps 1-5 happen here
        t1 = time.perf_counter()
        res = evaluate_rank(blocks, qp, gp, qc, gc)
        stages = {'steps 1-5 (s)': t1 - t, 'steps 6-7 + ranking (s)': time.perf_counter() - t1}
    secs, cpu_secs = time.perf_counter() - t, cpu() - c
    _, peak = _mem()
    print(json.dumps({'secs': secs, 'cpu_secs': cpu_secs, 'peak_mb': peak, 'above_mb': peak - before,
                      'stages': stages, 'metrics': _metrics(*res), 'threads': torch.get_num_threads()}))


def _run(what, scale, args):
    cmd = [sys.executable, __file__, '--one', what, '--scale', str(scale), '--block', str(args.block),
           '--chunk', str(args.chunk)] + (['--progress'] if args.progress else [])
    err = None if args.progress else subprocess.PIPE  # the bars go to the terminal
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    if p.returncode != 0:
        sys.exit(f'{what} at scale {scale} failed:\n{p.stderr}')
    return json.loads(p.stdout.strip().splitlines()[-1])


def benchmark(args):
    rows = []
    for s in args.scale:
        for what in args.only:
            print(f'running {what} at scale {s} ...', file=sys.stderr, flush=True)
            rows.append((s, what, _run(what, s, args)))
    print(f'\n{os.cpu_count()} CPU cores, torch threads {rows[0][2]["threads"]}, load average at the end '
          f'{os.getloadavg()[0]:.1f}; features {DIM}-d; eval block {args.block}, '
          f're-ranking chunk {args.chunk}\n')
    print('| scale | queries x gallery | measurement | time (s) | CPU time (s) | peak RSS (MB) | '
          'above start (MB) | stages | mAP | CMC@1 | CMC@5 | mINP |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    names = {'eval': 'evaluation (streamed)', 'rerank': 'evaluation + re-ranking (k1=20, k2=6, lambda=0.3)'}
    for s, what, r in rows:
        n, m = _sizes(s), r['metrics']
        stages = ', '.join(f'{k} {v:.1f}' for k, v in r['stages'].items())
        print(f"| {s:g} | {n['queries']:,} x {n['gallery']:,} | {names[what]} | {r['secs']:.1f} | "
              f"{r['cpu_secs']:.1f} | {r['peak_mb']:.0f} | {r['above_mb']:.0f} | {stages} | {m['mAP']:.4f} | "
              f"{m['CMC@1']:.4f} | {m['CMC@5']:.4f} | {m['mINP']:.4f} |")
    scales = sorted({s for s, _, _ in rows})
    if len(scales) >= 2 and 1 not in scales:
        print('\nExtrapolated to full size (time = a s^2 + b s, memory = c + d s, least squares over the '
              'scales):\n')
        print('| measurement | time (s) | CPU time (s) | peak RSS (MB) |')
        print('|---|---|---|---|')
        for what in args.only:
            r = [r for _, w, r in rows if w == what]
            s = np.array([s for s, w, _ in rows if w == what])

            def at_full(key, quadratic):  # the least-squares model's value at s = 1: its coefficients' sum
                cols = [s**2, s] if quadratic else [np.ones_like(s), s]
                return np.linalg.lstsq(np.stack(cols, 1), [x[key] for x in r], rcond=None)[0].sum()

            print(f"| {names[what]} | {at_full('secs', True):.0f} | {at_full('cpu_secs', True):.0f} | "
                  f"{at_full('peak_mb', False):.0f} |")


def parity(args):
    "Streamed against dense on the 2,000 x 20,000 cut; exits 1 if any difference exceeds 1e-6."
    import torch
    from pmanet.metrics import distance_blocks, evaluate_rank
    from pmanet.reranking import euclidean_distance, re_ranking, re_ranking_blocks

    q, g, qp, gp, qc, gc = features(**CUT)
    nq, block, chunk, worst = len(q), args.block, args.chunk, {}
    print(f'cut: {nq:,} queries x {len(g):,} gallery, {DIM}-d', file=sys.stderr, flush=True)
    # evaluation: the whole matrix (made of the same blocks) under evaluate_rank and the peers' literal code
    dense = np.concatenate([b.numpy() for b in distance_blocks(q, g, euclidean_distance, block)])
    streamed = evaluate_rank(distance_blocks(q, g, euclidean_distance, block), qp, gp, qc, gc)
    refs = {'evaluate_rank on the whole matrix': evaluate_rank(dense, qp, gp, qc, gc)}
    refs['literal torchreid/fast-reid evaluation'] = eval_market1501_reference(dense, qp, gp, qc, gc, 50)
    for name, ref in refs.items():
        worst[f'evaluation: streamed vs {name}'] = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                                                       for a, b in zip(streamed, ref))
    # re-ranking: the three matrices of the field's signature, cut from one N x N matrix whose rows are
    # computed exactly as the streamed run computes them (the same chunks; the product is symmetric to the
    # bit), so both see the same neighbour lists
    x = torch.cat([q, g])
    rows = np.concatenate([euclidean_distance(x[s : s + chunk], x).numpy() for s in range(0, len(x), chunk)])
    cat = rows.T  # the concatenated [[qq, qg], [gq, gg]] whose columns are those rows
    qg, qq, gg = cat[:nq, nq:], cat[:nq, :nq], cat[nq:, nq:]
    print('re-ranking: dense (three matrices) ...', file=sys.stderr, flush=True)
    dense_rr = {'re_ranking on the three matrices': re_ranking(qg, qq, gg, chunk=chunk)}
    if args.literal:
        print("re-ranking: Zhong et al.'s literal dense code (about 10 GB) ...", file=sys.stderr, flush=True)
        dense_rr["Zhong et al.'s literal dense code"] = re_ranking_reference(qg, qq, gg)
    print('re-ranking: streamed ...', file=sys.stderr, flush=True)
    s, diff = 0, dict.fromkeys(dense_rr, 0.0)
    for b in re_ranking_blocks(q, g, chunk=chunk, block=block):
        for k, d in dense_rr.items():
            diff[k] = max(diff[k], float(np.abs(b - d[s : s + len(b)]).max()))
        s += len(b)
    for k, v in diff.items():
        worst[f're-ranked distances: streamed blocks vs {k}'] = v
    rr_dense = dense_rr['re_ranking on the three matrices']
    rr_streamed = evaluate_rank(re_ranking_blocks(q, g, chunk=chunk, block=block), qp, gp, qc, gc)
    worst['re-ranked evaluation: streamed vs whole matrix'] = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(rr_streamed, evaluate_rank(rr_dense, qp, gp, qc, gc))
    )
    print(f'\nbefore re-ranking: {_metrics(*streamed)}\nafter re-ranking:  {_metrics(*rr_streamed)}\n')
    print('| comparison | max abs difference |')
    print('|---|---|')
    for k, v in worst.items():
        print(f'| {k} | {v:.1e} |')
    bad = [k for k, v in worst.items() if not v <= 1e-6]
    print('\nparity: ' + ('FAILED: ' + '; '.join(bad) if bad else 'every difference <= 1e-6'))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--scale', type=float, nargs='+', default=[1.0], help='fractions of the full size')
    ap.add_argument('--only', nargs='+', choices=['eval', 'rerank'], default=['eval', 'rerank'])
    ap.add_argument('--block', type=int, default=1024, help='queries per distance block')
    ap.add_argument('--chunk', type=int, default=2048, help='rows per re-ranking neighbour chunk')
    ap.add_argument('--progress', action='store_true', help='progress bars (rate and time left)')
    ap.add_argument('--parity', action='store_true', help='streamed vs dense on the 2,000 x 20,000 cut')
    ap.add_argument('--literal', action='store_true', help="with --parity: also Zhong et al.'s dense code")
    ap.add_argument('--one', choices=['eval', 'rerank'], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return _child(args.one, args.scale[0], args.block, args.chunk, args.progress)
    return parity(args) if args.parity else benchmark(args)


if __name__ == '__main__':
    sys.exit(main())
