"""A toy classifier and loaders shaped like the real ones (dict batches with `labels`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class ToyDataset(Dataset):
    """Linearly separable 2-class data as {"input_ids": features, "labels": y}."""

    def __init__(self, n: int = 96, dim: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


class ToyModel(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.linear(input_ids)


def toy_setup(n_train: int = 96, batch_size: int = 8):
    model = ToyModel()
    train_loader = DataLoader(
        ToyDataset(n_train, seed=0),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val_loader = DataLoader(ToyDataset(48, seed=1), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    criterion = nn.CrossEntropyLoss()
    return model, train_loader, val_loader, optimizer, criterion


class ToyCriteriaDataset(Dataset):
    """Nine yes/no labels per example, each separable: label k is ``x[k] > shift[k]``.

    The shifts make the criteria unequally common (like ReDSM5's), so their thresholds and
    F1s differ; batches are {"input_ids": features, "labels": float [9]}.
    """

    def __init__(self, n: int = 120, dim: int = 12, n_labels: int = 9, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        shift = torch.linspace(-0.5, 1.0, n_labels)
        self.y = (self.x[:, :n_labels] > shift).float()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


class ToyCriteriaModel(nn.Module):
    """A linear score per criterion: logits [batch, 9]."""

    def __init__(self, dim: int = 12, n_labels: int = 9) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, n_labels)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.linear(input_ids)


def toy_criteria_setup(n_train: int = 120, batch_size: int = 8):
    """Like :func:`toy_setup`, for nine criteria (use ``BCEWithLogitsLoss`` + CriteriaTask)."""
    torch.manual_seed(0)
    model = ToyCriteriaModel()
    train_loader = DataLoader(
        ToyCriteriaDataset(n_train, seed=0),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val_loader = DataLoader(ToyCriteriaDataset(80, seed=1), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    criterion = nn.BCEWithLogitsLoss()
    return model, train_loader, val_loader, optimizer, criterion
