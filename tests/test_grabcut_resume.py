"""A GrabCut mask store survives `SIGKILL` mid-run: what was written reads back valid, and the resumed run
computes exactly the missing images without touching the finished ones (same inode and modification time)."""

import os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import cv2

from pmanet.grabcut import make_pseudo_masks, toy_vehicle
from pmanet.store import Store

N = 40  # 96 px toy vehicles: ~25 ms each, so two workers need ~0.5 s; the kill comes after the first few


def _entries(store_dir):
    "Finished entry files (hidden temp files of a killed writer excluded) -> (inode, mtime_ns)."
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in Path(store_dir).glob('??/*.npz')}


def test_kill_and_resume(tmp_path):
    data, out = tmp_path / 'data', tmp_path / 'masks'
    (data / 'image_train').mkdir(parents=True)
    for i in range(N):
        cv2.imwrite(str(data / 'image_train' / f'{i:04d}_c001_{i:08d}_0.jpg'), toy_vehicle(96, i)[0])
    script = textwrap.dedent(f"""
        from pmanet.grabcut import make_pseudo_masks
        if __name__ == '__main__': make_pseudo_masks({str(data)!r}, {str(out)!r}, workers=2, progress=False)
    """)
    # own session, so that the kill reaches the worker processes too, as a scheduler's would
    proc = subprocess.Popen([sys.executable, '-c', script], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_entries(out)) < 4:
            assert proc.poll() is None, f'the run ended (rc={proc.returncode}) before it could be killed'
            assert time.monotonic() < deadline, 'no masks written after 120 s'
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _entries(out)
    assert 4 <= len(done) < N, len(done)
    store = Store(out)
    for k in store.keys():
        assert set(store[k]) == {'mask'}  # no half-written entry: all verify

    rep = make_pseudo_masks(data, out, workers=2, progress=False)
    assert (rep['run']['skipped'], rep['run']['computed']) == (len(done), N - len(done))
    assert {p: v for p, v in _entries(out).items() if p in done} == done  # finished entries untouched
    assert (rep['store']['entries'], rep['store']['missing'], rep['store']['corrupt']) == (N, 0, [])
