#!/usr/bin/env python
"""Benchmark pmanet's evaluation and re-ranking against the literal reference code, at VeRi776 and
VehicleID-large sizes.

Random clustered features stand in for a model's (the speed and memory of evaluation and re-ranking do not
depend on where the features come from). Each measurement runs in its own subprocess, so every peak is its
own: the peak resident memory (VmHWM, reset just before the measured call) is reported whole and above what
the process held before the call (Python, torch, the inputs). Times are wall-clock of the measured call only,
first call in a fresh process. Results of ours and of the references are compared (max |difference|).

    python benchmarks/bench_eval.py                 # everything (about 3 minutes on 2 cores)
    python benchmarks/bench_eval.py --skip-reference
    python benchmarks/bench_eval.py --only veri-rerank veri-rerank-ref

Sizes: VeRi776 test set, 1,678 queries x 11,579 gallery, 200 identities, 20 cameras; VehicleID large test
list, 19,777 images of 2,400 identities, one split: 2,400 gallery, 17,377 queries. Features: 256-d,
L2-normalised; distances: cosine (what PMANet uses).
"""

import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get('BENCH_TMP', tempfile.gettempdir())) / 'pmanet_bench_eval'


def _mem():
    "(current RSS, peak RSS since the last reset) in MB, from /proc/self/status."
    st = {
        l.split(':')[0]: int(l.split()[1])
        for l in open('/proc/self/status')
        if l.startswith(('VmRSS', 'VmHWM'))
    }
    return st['VmRSS'] / 1024, st['VmHWM'] / 1024


def _reset_peak():
    open('/proc/self/clear_refs', 'w').write('5')


def _features(n_ids, n_images, seed, dim=256, n_cams=20):
    "Clustered unit features: identity centre + camera bias + noise."
    rng = np.random.default_rng(seed)
    pids = np.concatenate(
        [np.arange(n_ids), rng.integers(0, n_ids, n_images - n_ids)]
    )  # every id at least once
    cams = rng.integers(0, n_cams, n_images)
    x = (
        rng.normal(size=(n_ids, dim))[pids]
        + 0.6 * rng.normal(size=(n_cams, dim))[cams]
        + 1.3 * rng.normal(size=(n_images, dim))
    )
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x, pids, cams


def _veri():
    x, pids, cams = _features(200, 1678 + 11579, seed=0)
    q, g = slice(0, 1678), slice(1678, None)
    return x[q], x[g], pids[q], pids[g], cams[q], cams[g]


def _vehicleid():
    from pmanet.metrics import vehicleid_split

    x, pids, _ = _features(2400, 19777, seed=1)
    q, g = vehicleid_split(pids, seed=0, split=0)
    return x[q], x[g], pids[q], pids[g], np.zeros(len(q), int), np.ones(len(g), int)


# ---- the literal references, as in pmanet's notebooks 30 and 31 (torchreid / fast-reid / Zhong et al.) ----
def eval_market1501_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_AP, all_INP = [], [], []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        pos_idx = np.where(raw_cmc == 1)
        max_pos_idx = np.max(pos_idx)
        inp = cmc[max_pos_idx] / (max_pos_idx + 1.0)
        all_INP.append(inp)
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_valid_q += 1.0
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        AP = tmp_cmc.sum() / num_rel
        all_AP.append(AP)
    assert num_valid_q > 0, 'Error: all query identities do not appear in gallery'
    all_cmc = np.asarray(all_cmc).astype(np.float32)
    all_cmc = all_cmc.sum(0) / num_valid_q
    return all_cmc, np.mean(all_AP), np.mean(all_INP)


def re_ranking_reference(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    original_dist = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0
    )
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)
    query_num = q_g_dist.shape[0]
    gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    all_num = gallery_num
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate, : int(np.around(k1 / 2.0)) + 1]
            candidate_backward_k_neigh_index = initial_rank[
                candidate_forward_k_neigh_index, : int(np.around(k1 / 2.0)) + 1
            ]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 2.0 / 3 * len(
                candidate_k_reciprocal_index
            ):
                k_reciprocal_expansion_index = np.append(
                    k_reciprocal_expansion_index, candidate_k_reciprocal_index
                )
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num,]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    del original_dist, V, jaccard_dist
    final_dist = final_dist[:query_num, query_num:]
    return final_dist


# ---- measurements: name -> (size, what, setup() -> (call, inputs MB)) ----
def _cos(a, b):
    from pmanet.outputs import cosine_distance

    return cosine_distance(a, b).numpy()


def _eval_setup(data, reference):
    def setup():
        qf, gf, qp, gp, qc, gc = data()
        d = _cos(qf, gf)
        if reference:
            return (lambda: eval_market1501_reference(d, qp, gp, qc, gc, 50)), d.nbytes
        from pmanet.metrics import evaluate_rank

        return (lambda: evaluate_rank(d, qp, gp, qc, gc, 50)), d.nbytes

    return setup


def _rerank_setup(data, how):
    def setup():
        import torch

        qf, gf, *_ = data()
        if how == 'features':
            from pmanet.outputs import cosine_distance
            from pmanet.reranking import re_ranking_features

            qt, gt = torch.from_numpy(qf), torch.from_numpy(gf)
            return (lambda: re_ranking_features(qt, gt, distance=cosine_distance)), qf.nbytes + gf.nbytes
        qg, qq, gg = _cos(qf, gf), _cos(qf, qf), _cos(gf, gf)
        if how == 'reference':
            return (lambda: re_ranking_reference(qg, qq, gg)), qg.nbytes + qq.nbytes + gg.nbytes
        from pmanet.reranking import re_ranking

        return (lambda: re_ranking(qg, qq, gg)), qg.nbytes + qq.nbytes + gg.nbytes

    return setup


def _vehicleid_protocol():
    import torch
    from pmanet.outputs import cosine_distance
    from pmanet.metrics import evaluate_vehicleid

    x, pids, _ = _features(2400, 19777, seed=1)
    xt = torch.from_numpy(x)
    return (lambda: evaluate_vehicleid(xt, pids, cosine_distance, n_splits=10)), x.nbytes


BENCH = {
    'veri-eval': ('VeRi776', 'evaluate_rank (ours)', _eval_setup(_veri, False)),
    'veri-eval-ref': ('VeRi776', 'evaluate_rank (literal Python reference)', _eval_setup(_veri, True)),
    'veri-rerank': ('VeRi776', 're_ranking on 3 matrices (ours)', _rerank_setup(_veri, 'matrices')),
    'veri-rerank-feat': ('VeRi776', 're_ranking_features (ours)', _rerank_setup(_veri, 'features')),
    'veri-rerank-ref': ('VeRi776', 're_ranking (literal dense reference)', _rerank_setup(_veri, 'reference')),
    'vid-eval': ('VehicleID-large', 'evaluate_rank, one split (ours)', _eval_setup(_vehicleid, False)),
    'vid-eval-ref': (
        'VehicleID-large',
        'evaluate_rank, one split (literal Python reference)',
        _eval_setup(_vehicleid, True),
    ),
    'vid-protocol': (
        'VehicleID-large',
        'evaluate_vehicleid, 10 splits, cosine distances included (ours)',
        _vehicleid_protocol,
    ),
    'vid-rerank-feat': (
        'VehicleID-large',
        're_ranking_features (ours)',
        _rerank_setup(_vehicleid, 'features'),
    ),
}
PAIRS = {
    'veri-eval': 'veri-eval-ref',
    'veri-rerank': 'veri-rerank-ref',
    'veri-rerank-feat': 'veri-rerank-ref',
    'vid-eval': 'vid-eval-ref',
}


def _child(name):
    call, inputs = BENCH[name][2]()
    before, _ = _mem()
    _reset_peak()
    t = time.perf_counter()
    result = call()
    secs = time.perf_counter() - t
    _, peak = _mem()
    OUT.mkdir(parents=True, exist_ok=True)
    if isinstance(result, tuple):
        np.savez(OUT / f'{name}.npz', cmc=result[0], mAP=result[1], mINP=result[2])
    elif isinstance(result, np.ndarray):
        np.save(OUT / f'{name}.npy', result)
    print(json.dumps({'secs': secs, 'peak_mb': peak, 'above_mb': peak - before, 'inputs_mb': inputs / 2**20}))


def _diff(a, b):
    "Max |difference| between the saved results of two measurements."
    fa, fb = OUT / f'{a}.npy', OUT / f'{b}.npy'
    if fa.exists() and fb.exists():
        return float(np.abs(np.load(fa) - np.load(fb)).max())
    fa, fb = OUT / f'{a}.npz', OUT / f'{b}.npz'
    if fa.exists() and fb.exists():
        ra, rb = np.load(fa), np.load(fb)
        return max(float(np.abs(ra[k] - rb[k]).max()) for k in ('cmc', 'mAP', 'mINP'))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--only', nargs='*', choices=list(BENCH), help='run only these measurements')
    ap.add_argument('--skip-reference', action='store_true', help='skip the slow literal references')
    ap.add_argument('--one', choices=list(BENCH), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return _child(args.one)
    names = args.only or [n for n in BENCH if not (args.skip_reference and n.endswith('-ref'))]
    for f in OUT.glob('*.np*'):
        f.unlink()
    rows = {}
    for n in names:
        print(f'running {n} ...', file=sys.stderr, flush=True)
        p = subprocess.run([sys.executable, __file__, '--one', n], capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            rows[n] = None
            continue
        rows[n] = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\n{os.cpu_count()} CPU cores, torch threads {__import__('torch').get_num_threads()}\n")
    print(
        '| size | measurement | time (s) | peak RSS (MB) | peak above start (MB) | inputs (MB) | speed-up '
        '| max abs diff vs reference |'
    )
    print('|---|---|---|---|---|---|---|---|')
    for n in names:
        r, ref = rows[n], PAIRS.get(n)
        if r is None:
            print(f'| {BENCH[n][0]} | {BENCH[n][1]} | failed | | | | | |')
            continue
        speed = f"{rows[ref]['secs'] / r['secs']:.1f}x" if ref in rows and rows[ref] else ''
        d = _diff(n, ref) if ref in rows and rows[ref] else None
        print(
            f"| {BENCH[n][0]} | {BENCH[n][1]} | {r['secs']:.2f} | {r['peak_mb']:.0f} | {r['above_mb']:.0f} "
            f"| {r['inputs_mb']:.0f} | {speed} | "
            f"{'' if d is None else f'{d:.1e}'} |"
        )
    n_all = 2400 + 17377
    print(
        f"\nThe dense reference at VehicleID-large size is not run: it holds original_dist, V, V_qe (float32)"
        f" and initial_rank (int32, after an int64 argsort) as {n_all} x {n_all} matrices, "
        f"{n_all**2 * 4 / 2**30:.1f} GiB each, "
        f"about {n_all**2 * (4 * 4 + 8) / 2**30:.0f} GiB at its peak."
    )


if __name__ == '__main__':
    main()
