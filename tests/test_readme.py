"""README.md is kept by hand (Quarto, which `nbdev-readme` needs, cannot be installed offline): check it stays
in step with nbs/index.ipynb and that its example runs."""

import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()


def _index_cells(kind):
    nb = json.loads((ROOT / 'nbs' / 'index.ipynb').read_text())
    return [''.join(c['source']).strip() for c in nb['cells'] if c['cell_type'] == kind]


def test_readme_has_every_index_cell():
    for src in _index_cells('code'):
        assert src in README, f'README.md lacks this code cell of index.ipynb:\n{src}'
    for src in _index_cells('markdown')[1:]:
        assert src in README, f'README.md lacks this text of index.ipynb:\n{src[:200]}'


def test_quick_start_has_two_commands():
    block = re.search(r'## Quick start.*?```sh\n(.*?)```', README, re.S).group(1)
    cmds = [l for l in block.splitlines() if l.strip() and not l.startswith('#')]
    assert len(cmds) == 2, cmds
    assert 'pmanet' in cmds[0].split('&&')[-1] and 'pytest' in cmds[1].split('&&')[-1]


def test_readme_example_runs():
    for src in re.findall(r'```python\n(.*?)```', README, re.S):
        exec(compile(src, 'README.md', 'exec'), {})
