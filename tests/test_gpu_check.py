"""`benchmarks/gpu_check.py` in its CPU form, as CI can run it: every check runs, and the table says so.

On a GPU machine the script runs at the paper's sizes instead; this test forces the small CPU form there too
(`--cpu-small`), so that it stays a quick test everywhere.
"""

import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_small(tmp_path):
    out = tmp_path / 'gpu_check.md'
    cmd = [sys.executable, str(ROOT / 'benchmarks' / 'gpu_check.py'), '--cpu-small', '--out', str(out),
           '--work', str(tmp_path / 'work')]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    text = out.read_text()
    rows = [line.split(' | ') for line in text.splitlines() if line.startswith('| ') and '---' not in line]
    header, rows = rows[0], rows[1:]
    checks = [(r[0].removeprefix('| '), r[1]) for r in rows]
    steps = [c for c in checks if c[0].startswith('train step')]
    assert len(steps) == 12 and len(set(steps)) == 12, steps  # 2 networks x 3 precisions x 2 memory formats
    after = ['torchrun epoch (PMNet)', 'feature extraction', 'feature extraction', 'ONNX export on cpu']
    assert [c[0] for c in checks[12:]] == after, checks
    speed = header.index('images/s')
    timed = [r for r in rows[:15] if not r[1].startswith('fp16')]  # CPUs skip fp16 (too slow to be of use)
    assert len(timed) == 11 and all(float(r[speed]) > 0 for r in timed), rows
    assert 'FAILED' not in text and 'NON-FINITE' not in text
    assert 'gloo x 1' in text  # the epoch ran in a torchrun process group
    assert 'within 0.001' in text  # ONNX Runtime agrees with eager PyTorch
