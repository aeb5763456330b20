"""Run under torchrun by test_distributed: evaluate a toy model on per-rank shards."""

from __future__ import annotations

import json

import torch
from torch.utils.data import DataLoader

from psy_agents_noaug.training.distributed import (
    ShardSampler,
    init_distributed,
    shutdown_distributed,
)
from psy_agents_noaug.training.train_loop import Trainer
from tests.toy import ToyDataset, ToyModel

if __name__ == "__main__":
    ctx = init_distributed("cpu")
    torch.manual_seed(0)
    model = ToyModel()
    dataset = ToyDataset(45, seed=3)
    loader = DataLoader(dataset, batch_size=8, sampler=ShardSampler(len(dataset), ctx))
    trainer = Trainer(
        model,
        loader,
        loader,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.CrossEntropyLoss(),
        "cpu",
        track=False,
        distributed=ctx,
    )
    metrics = trainer.evaluate()
    if ctx.rank == 0:
        print(json.dumps(metrics))
    # Without a DDP wrapper the group really closes here, joining gloo's worker threads
    # before interpreter finalization (where they would abort the process).
    shutdown_distributed()
