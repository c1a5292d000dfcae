"""Folders that several processes write at once: a gallery index (writers queue and nothing is lost), a
store's manifest (a second config is refused), and run and demo folders (a second writer is refused and adds
nothing). Real processes, forked, many rounds: races show only when they are given the chance."""

import hashlib, multiprocessing as mp
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cli_run import run
from pmanet.core import folder_lock
from pmanet.gallery import GalleryIndex, index_images
from pmanet.store import Store, StoreError
from pmanet.synthetic import SyntheticConfig, make_synthetic

WRITERS, ROUNDS, IMAGES = 4, 20, 6
CTX = mp.get_context('fork')


def vector_of(key, dim=8):
    "A unit vector that only this key has: a row stored under the wrong key cannot pass the check."
    v = np.frombuffer(hashlib.sha256(key.encode()).digest()[:4 * dim], np.uint32).astype(np.float32) - 2**31
    return v / np.linalg.norm(v)


class KeyEmbedder:
    "Stands in for `Embedder`: embeds an image path by its file name, instantly."
    dim = 8
    def describe(self): return {'kind': 'key-hash'}
    def embed(self, paths, batch_size, num_workers, progress=False):
        vectors = np.stack([vector_of(Path(p).name) for p in paths])
        return SimpleNamespace(fused=lambda: vectors)


def embed_folder(folder, index_dir, start):
    start.wait(30)
    index_images(KeyEmbedder(), folder, index_dir, block=1, progress=False)


def test_gallery_writers_lose_nothing(tmp_path):
    for r in range(ROUNDS):
        folders = []
        for w in range(WRITERS):
            folders.append(tmp_path/f'r{r}'/f'gallery{w}')
            folders[-1].mkdir(parents=True)
            for i in range(IMAGES): (folders[-1]/f'w{w}_{i}.jpg').write_bytes(b'')
        start, index_dir = CTX.Event(), tmp_path/f'r{r}'/'index'
        procs = [CTX.Process(target=embed_folder, args=(f, index_dir, start)) for f in folders]
        for p in procs: p.start()
        start.set()
        for p in procs: p.join(60)
        assert [p.exitcode for p in procs] == [0] * WRITERS
        index = GalleryIndex(index_dir)
        expected = {f'w{w}_{i}.jpg' for w in range(WRITERS) for i in range(IMAGES)}
        assert sorted(index.keys) == sorted(expected), f'round {r}'
        np.testing.assert_allclose(np.asarray(index.vectors), np.stack([vector_of(k) for k in index.keys]),
                                   atol=1e-6)


def create_store(path, config, start, results):
    start.wait(30)
    try:
        store = Store.create(path, 'grabcut', {'iters': config},
                             command=f'pmanet pseudo-masks --iters {config}')
        store.put(f'image_{config}_{mp.current_process().pid}.jpg', {'mask': np.full(3, config, np.uint8)})
        results.put(('ok', config))
    except StoreError as e: results.put(('refused', str(e)))


def test_store_builders_of_two_configs(tmp_path):
    "Four builders at once, two configs: the store keeps one config, and the other builders add nothing."
    for r in range(ROUNDS):
        start, results, path = CTX.Event(), CTX.Queue(), tmp_path/f'store{r}'
        procs = [CTX.Process(target=create_store, args=(path, w % 2 + 1, start, results))
                 for w in range(WRITERS)]
        for p in procs: p.start()
        start.set()
        for p in procs: p.join(60)
        outcomes = [results.get(timeout=10) for _ in procs]
        kept = Store(path).manifest['config']['iters']
        assert sorted(o[1] for o in outcomes if o[0] == 'ok') == [kept, kept], outcomes
        assert all('other settings' in o[1] or 'another' in o[1] for o in outcomes if o[0] == 'refused')
        assert {int(Store(path)[k]['mask'][0]) for k in Store(path).keys()} == {kept}


def hold(folder, ready, release):
    with folder_lock(folder, 'run folder'):
        ready.set()
        release.wait(60)


@pytest.mark.parametrize('argv', [
    ['train', '{root}', 'none', '{folder}', '--model', 'bot', '--epochs', '1', '--max-iters', '1',
     '--weights', 'none', '--depth', '18', '--size', '64', '--quiet'],
    ['demo', '--out', '{folder}'],
    ['synthetic', '{folder}', '--ids', '3', '--images', '2', '--cameras', '2', '--size', '32'],
])
def test_busy_folder_refused(tmp_path, argv):
    "While another process writes a run, demo or synthetic folder, a second writer is refused, adds nothing."
    root = make_synthetic(tmp_path/'veri', SyntheticConfig(train_ids=4, test_ids=2, images_per_id=4, size=32,
                                                            cameras=3, cameras_per_id=(2, 3)))
    folder = tmp_path/'busy'
    ready, release = CTX.Event(), CTX.Event()
    holder = CTX.Process(target=hold, args=(folder, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        before = sorted(folder.rglob('*'))
        rc, _, err = run(*[a.format(root=root, folder=folder) for a in argv])
        assert (rc, err.count('\n')) == (1, 1), err
        assert f'is in use by pid {holder.pid}' in err and 'use another folder' in err
        assert sorted(folder.rglob('*')) == before
    finally:
        release.set()
        holder.join(30)
