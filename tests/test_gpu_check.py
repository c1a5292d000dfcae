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
    col = {name: header.index(name) for name in ('images/s', 'syncs/step')}
    checks = [(r[0].removeprefix('| '), r[1]) for r in rows]
    steps = [c for c in checks if c[0] in ('train step BoT', 'train step PMNet')]
    assert len(steps) == 12 and len(set(steps)) == 12, steps  # 2 networks x 3 precisions x 2 memory formats
    after = ['train step PMNet, B x K > 256', 'host syncs / step', 'host syncs / step',
             'deterministic training', 'deterministic training', 'torchrun epochs (PMNet)',
             'feature extraction', 'feature extraction', 'ONNX export on cpu']
    assert checks[:12] == steps and [c[0] for c in checks[12:]] == after, checks
    # CPUs skip fp16 (too slow to be of use); every other train step, the epochs and the extraction are timed
    timed = [r for r in rows[:13] + rows[17:20] if not r[1].startswith('fp16')]
    assert len(timed) == 12 and all(float(r[col['images/s']]) > 0 for r in timed), rows
    assert [c[1] for c in checks[13:15]] == ['BoT, log_every 1', 'PMNet, log_every 1'], checks
    assert all(float(r[col['syncs/step']]) >= 0 for r in rows[13:15]), rows  # reported, not judged
    assert all('bit-identical, no op warned' in r[-1] for r in rows[15:17]), rows  # deterministic=True holds
    assert 'FAILED' not in text and 'NON-FINITE' not in text
    assert '288 crops of torch.bfloat16 maps vs fp32 per image' in rows[12][-1]  # B x K > 256, checked
    assert 'gloo x 1' in text and 'no process group warning' in text  # torchrun's process group, left cleanly
    assert 'within 0.001' in text  # ONNX Runtime agrees with eager PyTorch
