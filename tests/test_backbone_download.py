"""Two gloo processes build `weights='imagenet'` at once: local rank 0 downloads, rank 1 waits, then reads it.

The file is both the pytest test and the script of each process. No network: torchvision's
`load_state_dict_from_url` (what `WeightsEnum.get_state_dict` calls) is replaced by a stand-in for torch hub's
download-or-read-the-cache, which "downloads" (sleeps, then writes a state dict into a temporary cache folder)
when the file is missing and reads it otherwise, and records when it ran.
"""

import json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOWNLOAD_S = 2.0  # long enough that two processes started together overlap, even on a busy machine


def build(rank, folder):
    "One process of the job: join the group, build a ResNet-18 with ImageNet weights, log what the fetch did."
    import torch
    import torch.distributed as dist
    from unittest.mock import patch
    from torchvision import models
    from pmanet.backbone import resnet_last_stride1

    torch.set_num_threads(1)
    folder = Path(folder)
    cached = folder / 'hub' / 'resnet18.pth'

    calls = []
    def fetch(url, *args, **kwargs):  # torch hub's download-or-read-the-cache, without the network
        start = time.time()
        if cached.exists(): kind, sd = 'cache', torch.load(cached)
        else:
            time.sleep(DOWNLOAD_S)
            torch.manual_seed(0)
            kind, sd = 'download', models.resnet18().state_dict()
            cached.parent.mkdir(exist_ok=True)
            part = cached.with_name(f'.{os.getpid()}.partial')
            torch.save(sd, part)
            os.replace(part, cached)
        calls.append({'kind': kind, 'start': start, 'end': time.time()})
        return sd

    dist.init_process_group('gloo', init_method=f"file://{folder / 'init'}", rank=rank, world_size=2)
    dist.barrier()  # both processes build the model at the same moment, as under torchrun
    with patch('torchvision.models._api.load_state_dict_from_url', fetch):
        net = resnet_last_stride1(18, 'imagenet')
    (folder / f'rank{rank}.json').write_text(json.dumps({'calls': calls,
                                                         'conv1': net.conv1.weight.sum().item()}))
    dist.destroy_process_group()


def test_local_rank_zero_downloads_first(tmp_path):
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, str(rank), str(tmp_path)],
                              env={**env, 'LOCAL_RANK': str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    for p in procs:
        out, _ = p.communicate(timeout=90)
        assert p.returncode == 0, out
    r0, r1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1))
    assert [c['kind'] for c in r0['calls']] == ['download']
    assert [c['kind'] for c in r1['calls']] == ['cache']       # rank 1 read what rank 0 wrote
    assert r1['calls'][0]['start'] >= r0['calls'][0]['end']   # and only after rank 0 had finished
    assert r0['conv1'] == r1['conv1']                          # the same weights in both processes


if __name__ == '__main__':
    build(int(sys.argv[1]), sys.argv[2])
    # Leave without C++ static teardown: gloo's threads occasionally abort a process at exit under CPU load
    # (see tests/test_train_ddp.py); the results are written and the group destroyed by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
