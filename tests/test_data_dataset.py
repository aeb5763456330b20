"""Pair tokenisation, the dataset, dynamic-padding collate, and seeded loaders."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from psy_agents_noaug.data import (
    CRITERIA,
    CriteriaPairDataset,
    build_criteria_pairs,
    build_dataloaders,
    encode_pair,
    load_redsm5,
    make_collate_fn,
    sample_paths,
    split_by_post,
)
from psy_agents_noaug.models.classifier import CriteriaClassifier
from psy_agents_noaug.models.encoders import load_encoder, load_tokenizer

MAX_LENGTH = 128


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def sample_pairs() -> pd.DataFrame:
    return build_criteria_pairs(load_redsm5(*sample_paths()))


def small_pairs() -> pd.DataFrame:
    texts = ["short post.", "a much longer post " * 8, "medium length post here.", "tiny"]
    return pd.DataFrame(
        {
            "post_id": ["p1", "p2", "p3", "p4"],
            "criterion_id": ["A.4"] * 4,
            "text": texts,
            "criterion_text": [CRITERIA[3].description] * 4,
            "label": [1, 0, 0, 1],
        }
    )


def test_encode_pair_puts_post_first_and_criterion_second(tokenizer) -> None:  # type: ignore[no-untyped-def]
    encoded = encode_pair(tokenizer, "i cannot sleep", "sleep problems", MAX_LENGTH)
    assert set(encoded) == {"input_ids", "attention_mask", "token_type_ids"}
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "i", "cannot", "sleep", "[SEP]", "sleep", "problems", "[SEP]"]
    assert encoded["token_type_ids"] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert encoded["attention_mask"] == [1] * 8


def test_encode_pair_truncates_only_the_post(tokenizer) -> None:  # type: ignore[no-untyped-def]
    criterion = CRITERIA[0].description
    encoded = encode_pair(tokenizer, "word " * 500, criterion, 64)
    assert len(encoded["input_ids"]) == 64
    criterion_ids = tokenizer(criterion, add_special_tokens=False)["input_ids"]
    assert encoded["input_ids"][-len(criterion_ids) - 1 : -1] == criterion_ids


@pytest.mark.parametrize("bad", [0, -5, 2.5, None, True])
def test_encode_pair_rejects_bad_max_length(tokenizer, bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        encode_pair(tokenizer, "post", "criterion", bad)


def test_encode_pair_rejects_max_length_below_the_criterion(tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="max_length=8 is too small"):
        encode_pair(tokenizer, "post", CRITERIA[0].description, 8)


def test_dataset_items_match_encode_pair(tokenizer) -> None:  # type: ignore[no-untyped-def]
    pairs = small_pairs()
    dataset = CriteriaPairDataset(pairs, tokenizer, MAX_LENGTH)
    assert len(dataset) == 4
    for i in range(4):
        item = dataset[i]
        expected = encode_pair(tokenizer, pairs.text[i], pairs.criterion_text[i], MAX_LENGTH)
        assert item == {**expected, "labels": int(pairs.label[i])}
        assert isinstance(item["labels"], int)


def test_dataset_rejects_missing_columns_and_bad_labels(tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['criterion_text'\]"):
        CriteriaPairDataset(small_pairs().drop(columns="criterion_text"), tokenizer, MAX_LENGTH)
    bad = small_pairs().assign(label=[0, 1, 2, 1])
    with pytest.raises(ValueError, match="labels must be 0 or 1, got 2"):
        CriteriaPairDataset(bad, tokenizer, MAX_LENGTH)


def test_collate_pads_to_the_longest_item_not_max_length(tokenizer) -> None:  # type: ignore[no-untyped-def]
    dataset = CriteriaPairDataset(small_pairs(), tokenizer, MAX_LENGTH)
    collate = make_collate_fn(tokenizer)
    items = [dataset[0], dataset[2], dataset[3]]  # the long post is left out
    lengths = [len(item["input_ids"]) for item in items]
    batch = collate(items)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (3, max(lengths))
    assert max(lengths) < MAX_LENGTH
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    shortest = lengths.index(min(lengths))
    assert batch["input_ids"][shortest, min(lengths) :].eq(tokenizer.pad_token_id).all()
    assert batch["labels"].tolist() == [1, 0, 1]
    assert all(t.dtype == torch.long for t in batch.values())
    assert collate([dataset[1], dataset[3]])["input_ids"].shape[1] == len(dataset[1]["input_ids"])


def test_collate_can_round_up_to_a_multiple(tokenizer) -> None:  # type: ignore[no-untyped-def]
    dataset = CriteriaPairDataset(small_pairs(), tokenizer, MAX_LENGTH)
    batch = make_collate_fn(tokenizer, pad_to_multiple_of=8)([dataset[0], dataset[3]])
    assert batch["input_ids"].shape[1] % 8 == 0
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        make_collate_fn(tokenizer, pad_to_multiple_of=0)


@pytest.mark.xfail(
    strict=True,
    reason="the sample now has ReDSM5-like long posts (up to ~700 words); reading them whole "
    "needs windowed scoring, which lands with the generator's integration",
)
def test_bundled_sample_fits_max_length_128_untruncated(tokenizer, sample_pairs) -> None:  # type: ignore[no-untyped-def]
    # Truncation would cut evidence sentences off the end of a post and make labels wrong.
    full = tokenizer(list(sample_pairs["text"]), list(sample_pairs["criterion_text"]))
    assert max(len(ids) for ids in full["input_ids"]) <= MAX_LENGTH


def test_dataloaders_are_seeded_and_dynamically_padded(tokenizer, sample_pairs) -> None:  # type: ignore[no-untyped-def]
    splits = split_by_post(sample_pairs, seed=42)

    def first_train_batches(seed: int) -> list[list[int]]:
        train, _, _ = build_dataloaders(splits, tokenizer, MAX_LENGTH, 16, 64, seed=seed)
        batches = iter(train)
        return [next(batches)["input_ids"][:, 1:6].tolist() for _ in range(2)]

    assert first_train_batches(3) == first_train_batches(3)
    assert first_train_batches(3) != first_train_batches(4)

    train, val, test = build_dataloaders(splits, tokenizer, MAX_LENGTH, 16, 64, seed=0)
    assert len(train.dataset) == len(splits.train)
    assert (len(val.dataset), len(test.dataset)) == (len(splits.val), len(splits.test))
    val_labels = torch.cat([batch["labels"] for batch in val]).tolist()
    assert val_labels == splits.val["label"].tolist()  # evaluation keeps split order
    widths = {batch["input_ids"].shape[1] for batch in val}
    assert max(widths) <= MAX_LENGTH
    assert len(widths) > 1  # padded per batch, not to one fixed length
    batch = next(iter(train))
    assert batch["input_ids"].shape[0] == 16
    logits = CriteriaClassifier(load_encoder("tiny", seed=0), num_labels=2)(
        **{k: v for k, v in batch.items() if k != "labels"}
    )
    assert logits.shape == (16, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"eval_batch_size": -1}, "eval_batch_size must be a positive int"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
    ],
)
def test_build_dataloaders_validates(tokenizer, sample_pairs, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    splits = split_by_post(sample_pairs.head(90), val_fraction=0.2, test_fraction=0.2)
    args = {"batch_size": 4, "eval_batch_size": 4, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_dataloaders(splits, tokenizer, MAX_LENGTH, **args)
