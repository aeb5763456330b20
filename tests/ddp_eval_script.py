"""Run under torchrun by test_distributed: evaluate toy models on per-rank shards.

Prints, on rank 0, one JSON line: the single-label metrics of a classification model, and
the nine-criteria metrics (with the thresholds tuned on the gathered predictions) of a
criteria model.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch.utils.data import DataLoader

from psy_agents_noaug.training.distributed import (
    ShardSampler,
    init_distributed,
    shutdown_distributed,
)
from psy_agents_noaug.training.tasks import CriteriaTask
from psy_agents_noaug.training.train_loop import Trainer
from tests.toy import ToyCriteriaDataset, ToyCriteriaModel, ToyDataset, ToyModel

CRITERIA = tuple(f"A.{i}" for i in range(1, 10))


def _evaluate(ctx, model, dataset, criterion, task=None) -> tuple[dict[str, float], Any]:
    loader = DataLoader(dataset, batch_size=8, sampler=ShardSampler(len(dataset), ctx))
    trainer = Trainer(
        model,
        loader,
        loader,
        torch.optim.SGD(model.parameters(), lr=0.1),
        criterion,
        "cpu",
        track=False,
        distributed=ctx,
        task=task,
    )
    return trainer.evaluate(), trainer.task


if __name__ == "__main__":
    ctx = init_distributed("cpu")
    torch.manual_seed(0)
    single_label, _ = _evaluate(
        ctx, ToyModel(), ToyDataset(45, seed=3), torch.nn.CrossEntropyLoss()
    )
    torch.manual_seed(0)
    criteria, task = _evaluate(
        ctx,
        ToyCriteriaModel(),
        ToyCriteriaDataset(45, seed=3),
        torch.nn.BCEWithLogitsLoss(),
        CriteriaTask(CRITERIA),
    )
    if ctx.rank == 0:
        report = {
            "classification": single_label,
            "criteria": criteria,
            "thresholds": task.thresholds,
        }
        print(json.dumps(report))
    # Without a DDP wrapper the group really closes here, joining gloo's worker threads
    # before interpreter finalization (where they would abort the process).
    shutdown_distributed()
