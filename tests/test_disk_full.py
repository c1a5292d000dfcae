"""A disk that fills up mid-write loses nothing: the previous checkpoint or store entry stays intact and
loadable, no temporary file is left behind, and the command line says which file and what to free.

The disk is a real 1 MiB tmpfs where the machine lets the test mount one (root on Linux). Elsewhere the fault
is injected at the writer: the files `atomic_write` opens share 64 KiB, then fail with ENOSPC, and the file
system reports no free space."""

import errno, io, os, subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

import pmanet.core
from pmanet.cli import main
from pmanet.core import atomic_write
from pmanet.store import Store


class _FillingFile(io.FileIO):
    "A file on a disk that has 64 KiB left, shared by every file opened after `fill()`."
    space = 0
    def write(self, b):
        if len(b) > _FillingFile.space: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _FillingFile.space -= len(b)
        return super().write(b)


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a file system that fills up: yields (folder, fill) where `fill()` uses up its space (a real
    tmpfs), or switches the injected fault on."""
    d = tmp_path/'disk'
    d.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(d)],
                             capture_output=True).returncode == 0

    def fill():
        if mounted:
            with open(d/'filler', 'wb', buffering=0) as f:
                try:
                    while True: f.write(b'\0' * 4096)
                except OSError as e: assert e.errno == errno.ENOSPC
        else:
            real, _FillingFile.space = os.fdopen, 2**16
            monkeypatch.setattr(pmanet.core.os, 'fdopen',
                                lambda fd, mode='r', *a, **k: real(fd, mode, *a, **k) if 'b' not in mode
                                else io.BufferedWriter(_FillingFile(fd, 'wb')))
            monkeypatch.setattr(pmanet.core, '_nearly_full', lambda folder: True)
    yield d, fill
    if mounted: subprocess.run(['umount', str(d)], check=True)


def _leftovers(folder): return [p.name for p in Path(folder).rglob('*.tmp')]


def test_checkpoint_survives(full_disk):
    d, fill = full_disk
    old = {'w': torch.arange(1000.)}
    with atomic_write(d/'last.pt') as f: torch.save(old, f)
    fill()
    with pytest.raises(OSError) as e:
        with atomic_write(d/'last.pt') as f: torch.save({'w': torch.zeros(300_000)}, f)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(d/'last.pt')
    assert torch.equal(torch.load(d/'last.pt', weights_only=True)['w'], old['w'])     # the old one, whole
    assert _leftovers(d) == []


def test_store_entry_survives(full_disk):
    d, fill = full_disk
    store = Store.create(d/'masks', 'grabcut', {}, 'pmanet pseudo-masks ROOT masks')
    mask = np.eye(8, dtype=np.uint8)
    store.put('a.jpg', {'mask': mask})
    fill()
    noise = np.random.default_rng(0).integers(0, 255, (600, 600), dtype=np.uint8)   # incompressible
    with pytest.raises(OSError) as e: store.put('a.jpg', {'mask': noise})
    assert e.value.errno == errno.ENOSPC
    assert np.array_equal(store['a.jpg']['mask'], mask) and _leftovers(d) == []


def test_the_cli_says_what_to_free(full_disk):
    d, fill = full_disk
    fill()
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(['synthetic', str(d/'synthetic'), '--ids', '6', '--size', '64', '--images', '4'])
    line = err.getvalue().strip()
    assert rc == 1 and '\n' not in line, line
    assert line.startswith('pmanet: No space left on device: ') and 'free space on that disk' in line, line
