"""Bad input at the command line: every case answers with one line, `pmanet: <message>`, exit code 1, no
traceback, and a message that names the thing and the fix (or, where the input is merely unusual, a correct
result). One table, one row per case a user meets; `CASES` is also the table quoted in the docs."""

import os, re, shutil

import pytest
import torch

from cli_run import run
from pmanet.backbone import BoTBaseline
from pmanet.checkpoint import model_spec, save_inference_checkpoint
from pmanet.datasets import read_veri776
from pmanet.grabcut import make_pseudo_masks
from pmanet.store import Store, entry_relpath
from pmanet.synthetic import SyntheticConfig, make_synthetic


@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "A tiny synthetic dataset, its GrabCut store, a BoT checkpoint and a few broken inputs."
    d = tmp_path_factory.mktemp('cli')
    cfg = SyntheticConfig(train_ids=6, test_ids=3, images_per_id=4, size=64, cameras=4, cameras_per_id=(2, 3))
    root = make_synthetic(d/'veri', cfg)
    data = read_veri776(root, verbose=False)
    make_pseudo_masks(data.train, d/'masks', workers=1, progress=False,
                      command=f"pmanet pseudo-masks {root} {d/'masks'} --dataset veri776")
    bot = BoTBaseline(num_classes=6, depth=18, weights=None).eval()
    save_inference_checkpoint(d/'bot.pt', bot, spec=model_spec(bot, (64, 64)))
    (d/'garbage.pt').write_bytes(b'not a checkpoint at all')

    class Payload:                     # what an untrusted pickle carries: code that runs when it is loaded
        def __reduce__(self): return (os.system, ('echo pwned',))
    torch.save({'model': Payload()}, d/'untrusted.pt')
    (d/'empty').mkdir()
    (d/'other_layout'/'images').mkdir(parents=True)
    shutil.copy(next((root/'image_train').iterdir()), d/'other_layout'/'images'/'a.jpg')
    (d/'corrupt').mkdir()
    shutil.copy(next((root/'image_train').iterdir()), d/'corrupt'/'good.jpg')
    (d/'corrupt'/'bad.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is no JPEG')
    (d/'bad_key.yaml').write_text('num_part: 3\n')
    (d/'bad_type.yaml').write_text('num_parts: three\n')
    (d/'user_files').mkdir()
    (d/'user_files'/'thesis.tex').write_text('my own work')
    return d, root


def missing_list_entry(d, root):
    "A copy of the dataset whose query list names an image that is not there."
    copy = d/'missing_image'
    if not copy.exists():
        shutil.copytree(root, copy)
        with open(copy/'name_query.txt', 'a') as f: f.write('0999_c001_00000000_0.jpg\n')
    return copy


def damaged_store(d, root):
    "A copy of the GrabCut store with one entry cut short."
    copy = d/'masks_damaged'
    if not copy.exists():
        shutil.copytree(d/'masks', copy)
        entry = copy/entry_relpath(Store(copy).keys()[0])
        entry.write_bytes(entry.read_bytes()[:40])
    return copy


# (case, argv from (workdir, dataset root), what the one line must say)
CASES = [
    ('unknown command', lambda d, r: ['trian'], "unknown command 'trian'"),
    ('missing dataset folder', lambda d, r: ['pseudo-masks', d/'nope', d/'m1'], 'not found'),
    ('empty dataset folder', lambda d, r: ['pseudo-masks', d/'empty', d/'m2'], 'no images found under'),
    ('folder of another layout', lambda d, r: ['train-panet', d/'other_layout', d/'masks', d/'p1'],
     'name_train.txt'),
    ('unknown --dataset', lambda d, r: ['pseudo-masks', r, d/'m3', '--dataset', 'veri'],
     'use veri776, vehicleid, veriwild, folder'),
    ('corrupt image', lambda d, r: ['pseudo-masks', d/'corrupt', d/'m4', '--workers', '1'],
     'could not be read, e.g.'),
    ('list naming a missing image', lambda d, r: ['eval', d/'bot.pt', missing_list_entry(d, r)],
     '0999_c001_00000000_0.jpg'),
    ('bad --shard', lambda d, r: ['pseudo-masks', r, d/'m5', '--shard', '3/2'], '0 <= i < n'),
    ('mask store missing', lambda d, r: ['train-panet', r, d/'no_masks', d/'p2'], 'no store at'),
    ('damaged mask store entry', lambda d, r: ['train-panet', r, damaged_store(d, r), d/'p3', '--depth', '18',
                                               '--weights', 'none', '--size', '64', '--ids-per-batch', '3',
                                               '--epochs', '1', '--workers', '1'],
     '--verify` to recompute the damaged entries'),
    ('batch larger than the dataset', lambda d, r: ['train-panet', r, d/'masks', d/'p4', '--depth', '18',
                                                    '--weights', 'none', '--size', '64', '--epochs', '1'],
     'lower the identities per batch (--ids-per-batch'),
    ('checkpoint not found', lambda d, r: ['eval', d/'nope.pt', r], 'checkpoint not found'),
    ('garbage checkpoint', lambda d, r: ['eval', d/'garbage.pt', r], 'cannot load checkpoint'),
    ('untrusted checkpoint (pickled code)', lambda d, r: ['eval', d/'untrusted.pt', r], 'holds Python code'),
    ('checkpoint of another model', lambda d, r: ['parts', r, d/'bot.pt', d/'parts1'], 'panet'),
    ('config with an unknown key', lambda d, r: ['train', r, d/'masks', d/'t1',
                                                 '--config', d/'bad_key.yaml'], "did you mean 'num_parts'?"),
    ('config with a wrong type', lambda d, r: ['train', r, d/'masks', d/'t2', '--config', d/'bad_type.yaml'],
     "PMNetConfig.num_parts must be int, got 'three'"),
    ('config file missing', lambda d, r: ['train', r, d/'masks', d/'t3',
                                          '--config', d/'nope.yaml'], 'config file not found'),
    ('output folder holding the user\'s files', lambda d, r: ['synthetic', d/'user_files', '--ids', '6'],
     'is not empty and holds no synthetic set'),
    ('input and output the same folder', lambda d, r: ['occlude', r/'image_query', r/'image_query'],
     'must be outside the query folder'),
    ('unknown re-ranking preset', lambda d, r: ['eval', d/'bot.pt', r, '--rerank', 'fast'], 'fast'),
    ('unknown ablation', lambda d, r: ['train', r, d/'masks', d/'t4', '--ablation', 'exp9'], 'exp9'),
    ('--seeds 0', lambda d, r: ['demo', '--out', d/'demo', '--seeds', '0'],
     '--seeds must be an integer from 1 to 100'),
    ('unknown study row', lambda d, r: ['study', '--out', d/'study', '--rows', 'Exp-9'], 'Exp-9'),
    ('image folder to embed missing', lambda d, r: ['embed', d/'nope', d/'index', '--checkpoint', d/'bot.pt'],
     'nope'),
    ('gallery index missing', lambda d, r: ['search', r/'image_query', d/'no_index', '--checkpoint',
                                            d/'bot.pt'], 'no_index'),
    ('export of a garbage checkpoint', lambda d, r: ['export', d/'garbage.pt', d/'m.onnx'],
     'cannot load checkpoint'),
]


_PROGRESS = re.compile(r'\d+%\|.*\|')                     # a tqdm bar: '  0%|          | 0/2 [...'


@pytest.mark.parametrize('case,argv,says', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(w, case, argv, says):
    d, root = w
    rc, _, err = run(*argv(d, root))
    lines = [l for l in err.strip().splitlines() if not _PROGRESS.search(l)]   # progress bars may precede
    assert rc == 1 and len(lines) == 1 and lines[0].startswith('pmanet: '), f"{case}: rc {rc}\n{err}"
    assert says in lines[0], f"{case}: {lines[0]}"


def test_debug_shows_the_traceback(w):
    d, root = w
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        run('--debug', 'eval', d/'nope.pt', root)


def test_nothing_is_lost(w):
    "The refusals above leave the user's files and the damaged store's good entries as they were."
    d, root = w
    assert (d/'user_files'/'thesis.tex').read_text() == 'my own work'
    assert sorted(p.name for p in (d/'user_files').iterdir()) == ['thesis.tex']
    assert len(Store(damaged_store(d, root)).keys()) == len(Store(d/'masks').keys())
