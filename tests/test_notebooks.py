"""Run every notebook in `nbs/` as one pytest test, through nbdev's own runner.

The skip flags (`tst_flags`) and the cell timeout come from `[tool.nbdev]` in pyproject.toml, exactly as
`nbdev-test` reads them, so `pytest` and `nbdev-test` run the same cells. Extra flags to run (e.g. `gpu data
slow` on a GPU machine) are passed with the environment variable PMANET_TEST_FLAGS.

The notebooks whose tests depend on the arithmetic (the precision policy, fp32 references of embeddings,
the bf16 paths tested on purpose) carry the `precision` mark: `PMANET_AMP=bf16 pytest -m precision tests`
runs them with bf16 forced, `PMANET_AMP=off pytest -m precision tests` with fp32 forced.
"""

import os
from pathlib import Path

import pytest
import nbdev.test as nbt  # the module, not `test_nb` itself, or pytest would collect it as a test
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(ROOT)
NOTEBOOKS = sorted(
    p
    for p in (ROOT / 'nbs').rglob('*.ipynb')
    if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts)
)
PRECISION = {'01_hardware', '07_train', '12_backbone', '21_pmnet', '33_features', '50_embedding'}


def test_there_are_notebooks():
    # nbdev-test exits 0 when it finds nothing to run; a suite that silently tests nothing must fail instead.
    assert len(NOTEBOOKS) >= 2, f'no notebooks found under {ROOT / "nbs"}'
    assert PRECISION <= {p.stem for p in NOTEBOOKS}, 'a notebook marked precision was renamed or removed'


@pytest.mark.parametrize(
    'nb', [pytest.param(p, marks=[pytest.mark.precision] if p.stem in PRECISION else []) for p in NOTEBOOKS],
    ids=[p.stem for p in NOTEBOOKS],
)
def test_notebook(nb):
    skip = CFG.tst_flags.split() if isinstance(CFG.tst_flags, str) else list(CFG.tst_flags)
    force = os.environ.get('PMANET_TEST_FLAGS', '').split()
    ok, secs = nbt.test_nb(
        nb, skip_flags=skip, force_flags=force, basepath=ROOT, cell_timeout=CFG.cell_timeout
    )
    assert ok, f'{nb.name} failed (its traceback is printed above)'
