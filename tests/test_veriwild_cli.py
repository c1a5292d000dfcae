"""`pmanet train` and `pmanet eval --dataset veriwild --test-size N` end to end on a tiny VeRi-Wild tree that
the test writes itself (`pmanet.datasets.write_veriwild_tree`): the checkpoint comes from a one-epoch BoT run
through the command line, the evaluation's JSON equals `evaluate_reid` run by hand, and a missing test list is
one line on stderr naming the file, exit code 1."""

import contextlib, io, json

import pytest

from pmanet.checkpoint import load_model
from pmanet.cli import main
from pmanet.datasets import read_dataset, write_veriwild_tree
from pmanet.evaluate import evaluate_reid

TRAIN = [(vid, cam) for vid in (3, 8, 21, 34) for cam in (1, 2, 3, 4)]  # 4 vehicles x 4 cameras
TESTS = {
    3000: ([(101, 1), (102, 2), (103, 3)], [(101, 2), (101, 5), (102, 2), (102, 6), (103, 4), (104, 1)]),
    5000: ([(101, 1), (105, 2)], [(101, 3), (105, 7), (105, 2), (106, 1)]),
}
FAST = ['--workers', '0', '--device', 'cpu', '--batch-size', '4']
pytestmark = pytest.mark.precision  # re-ranking needs distinct embeddings: bf16 must keep them apart


def _run(*argv):
    "Exit code, stdout and stderr of `pmanet ARGV...`, run in this process."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "The tiny tree and a BoT checkpoint trained on it for one epoch with `pmanet train --dataset veriwild`."
    tmp = tmp_path_factory.mktemp('veriwild')
    root = write_veriwild_tree(tmp / 'VERI-Wild', TRAIN, TESTS)
    rc, _, err = _run('train', root, 'none', tmp / 'bot', '--dataset', 'veriwild', '--model', 'bot',
                      '--depth', '18', '--weights', 'none', '--size', '64', '--epochs', '1',
                      '--ids-per-batch', '2', '--images-per-id', '4', '--workers', '0', '--device', 'cpu',
                      '--eval-every', '0', '--quiet')
    assert rc == 0, err
    return root, tmp / 'bot' / 'last.pt', tmp


def test_eval_veriwild(run):
    root, ckpt, tmp = run
    rc, out, err = _run('eval', ckpt, root, '--dataset', 'veriwild', '--test-size', '3000',
                        '--out', tmp / 'eval.json', *FAST)
    assert rc == 0, err
    assert 'VeRi-Wild-3000' in out and 'mAP' in out  # the printed table row
    got = json.loads((tmp / 'eval.json').read_text())
    m = load_model(ckpt)
    data = read_dataset(root, 'veriwild', test_size=3000, verbose=False)
    ref = evaluate_reid(m.model, data, None, m.lambdas, (64, 64), 4, 0, 'cpu')
    assert got['metrics'] == ref.metrics
    assert (got['dataset'], got['metrics']['queries'], got['metrics']['skipped']) == ('VeRi-Wild-3000', 3, 0)
    assert 0 < got['mAP'] <= 1 and got['CMC@1'] <= got['CMC@5'] <= 1


def test_eval_veriwild_other_size_reranked(run):
    root, ckpt, tmp = run
    rc, out, err = _run('eval', ckpt, root, '--dataset', 'veriwild', '--test-size', '5000', '--rerank',
                        'standard', '--out', tmp / 'eval5000.json', *FAST)
    assert rc == 0, err
    got = json.loads((tmp / 'eval5000.json').read_text())
    assert (got['dataset'], got['rerank'], got['metrics']['queries']) == ('VeRi-Wild-5000', 'standard', 2)


def test_eval_veriwild_missing_list(run):
    root, ckpt, _ = run
    rc, out, err = _run('eval', ckpt, root, '--dataset', 'veriwild', '--test-size', '10000', *FAST)
    first = err.splitlines()[0]
    assert rc == 1 and out == ''
    assert first.startswith(f"pmanet: list file not found: {root / 'train_test_split' / 'test_10000.txt'} ")
    assert 'test lists present: test_3000.txt, test_3000_query.txt, test_5000.txt' in first
    assert 'Traceback' not in err
