"""The training batches: one index into the data set resident on the device, and one cast.

Step ``s`` of a run always gets the same images: epoch ``s // steps_per_epoch`` shuffles the
training set with a generator seeded by (seed, epoch), and ``--hflip`` flips each image of the global
batch by a draw seeded by (seed, step). Under torchrun each process takes its slice of that global
batch, so any number of processes, and a resumed run, see what one uninterrupted process would have seen.
"""

from __future__ import annotations

import torch

from .distributed import World
from .state import epoch_seed, flip_seed


class Batches:
    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, world: World, hflip: bool, memory_format):
        self.images = images  # uint8 [N, C, S, S] on the training device
        self.batch_size = batch_size  # the global batch
        self.local_batch = batch_size // world.size
        self.seed, self.hflip, self.memory_format = seed, hflip, memory_format
        self.mine = slice(world.rank * self.local_batch, (world.rank + 1) * self.local_batch)
        self.steps_per_epoch = max(1, len(images) // batch_size)
        self._order: torch.Tensor | None = None  # this epoch's permutation of the images
        self._epoch = -1

    def __call__(self, step: int) -> torch.Tensor:
        """This process's share of step ``step``'s batch: float [B / processes, C, S, S] in [0, 1]."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            self._order = torch.randperm(len(self.images), generator=g).to(self.images.device)
            self._epoch = epoch
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]  # the global batch
        x = self.images[idx[self.mine]].float().div_(255.0)
        if self.hflip:
            g = torch.Generator().manual_seed(flip_seed(self.seed, step))
            flip = (torch.rand(len(idx), generator=g) < 0.5)[self.mine].to(self.images.device)  # [B / processes]
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x.contiguous(memory_format=self.memory_format)
