"""The batch order of an epoch: it depends only on (seed, epoch), and each process of a distributed run takes every
`world_size`-th item of it, so a resumed run, or one on another number of DataLoader workers, sees the same batches."""

from __future__ import annotations

import torch


def epoch_batches(
    n: int, batch_size: int, *, seed: int, epoch: int, rank: int, world_size: int, shuffle: bool = True
) -> list[list[int]]:
    """This process's batches of item indices for one epoch.

    Training (shuffle): a seeded permutation, padded to a multiple of `world_size`, every `world_size`-th index
    for this rank, and the last short batch dropped when there is at least one full one (BatchNorm needs > 1 item).
    Evaluation: every item exactly once over all ranks, in order.
    """
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
        order += order[: (-n) % world_size]
    else:
        order = list(range(n))
    mine = order[rank::world_size]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    if shuffle and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches
