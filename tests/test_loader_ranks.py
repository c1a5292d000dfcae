"""Two gloo processes draw different augmentation seeds: `set_loader_epoch` keys the workers' seeds by rank.

Each rank builds `make_train_loader` over the same tiny dataset with one worker process, and every item
returns the seed its worker was given (`torch.initial_seed()`, what the augmentations draw from). The ranks
must differ, rank 0 must draw what a single process draws, and each must repeat itself for the same epoch.
"""

import tempfile
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class WorkerSeeds(torch.utils.data.Dataset):
    "Eight images of four identities; an item is the seed of the worker that loads it."
    records = [SimpleNamespace(pid=i // 2) for i in range(8)]
    cache = None

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return torch.tensor(torch.initial_seed())


def epoch_seeds(epoch, **kw):
    "The worker seeds of one epoch's batches, in order."
    from pmanet.loading import make_train_loader, set_loader_epoch

    loader = make_train_loader(WorkerSeeds(), P=2, Q=2, seed=7, num_workers=1, pin_memory=False, **kw)
    set_loader_epoch(loader, epoch)
    return torch.cat(list(loader)).tolist()


def rank_main(rank, folder, out):
    dist.init_process_group('gloo', init_method=f'file://{folder}/group', rank=rank, world_size=2)
    try:
        seeds = torch.tensor([epoch_seeds(1), epoch_seeds(1)])
        gathered = [torch.empty_like(seeds) for _ in range(2)]
        dist.all_gather(gathered, seeds)
        if rank == 0: torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def test_ranks_draw_different_augmentations():
    with tempfile.TemporaryDirectory() as folder:
        out = f'{folder}/seeds.pt'
        mp.spawn(rank_main, args=(folder, out), nprocs=2)
        (r0_first, r0_again), (r1_first, r1_again) = torch.load(out)
    assert torch.equal(r0_first, r0_again) and torch.equal(r1_first, r1_again)   # an epoch repeats
    assert not set(r0_first.tolist()) & set(r1_first.tolist())                     # no seed shared
    assert set(r0_first.tolist()) == set(epoch_seeds(1, num_replicas=1, rank=0))   # rank 0 = one process
