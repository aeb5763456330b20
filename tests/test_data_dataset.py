"""Whole posts as windows: sentences, packing, the window cap, batches of posts."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from psy_agents_noaug.data import (
    EncodingSpec,
    PostWindowsDataset,
    WindowCollator,
    build_dataloaders,
    build_post_examples,
    load_redsm5,
    sample_paths,
    sentence_spans,
    window_post,
)
from psy_agents_noaug.data.windows import InputTemplate
from psy_agents_noaug.models.encoders import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def sample_posts() -> pd.DataFrame:
    return build_post_examples(load_redsm5(*sample_paths())).frame


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "I can't sleep. Any advice?\n\nthanks lol",
            ["I can't sleep.", "Any advice?", "thanks lol"],
        ),
        ("  Padded.   Twice!\tThird?", ["Padded.", "Twice!", "Third?"]),
        ("no boundary at all " * 3, ["no boundary at all no boundary at all no boundary at all"]),
        ("\n \n", []),
        ("😀😀 🙃", ["😀😀 🙃"]),
    ],
)
def test_sentence_spans_point_into_the_text(text: str, sentences: list[str]) -> None:
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


def test_every_token_of_a_long_post_is_in_some_window(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"Sentence number {i} says nothing much." for i in range(300))
    post = window_post(tokenizer, text, budget=30, max_windows=1000, overlap=1)
    assert post.n_seen == post.n_tokens > 2000 and not post.cut
    assert all(len(w) <= 30 for w in post.windows)
    # Whole sentences: a window starts and ends on a sentence boundary.
    for owners in post.token_sentence:
        assert owners[0] != owners[-1] or len(set(owners)) == 1
    # The overlap repeats the previous window's last sentence.
    assert post.token_sentence[1][0] == post.token_sentence[0][-1]


def test_a_sentence_longer_than_a_window_is_split_across_windows(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "word " * 100 + "end."
    post = window_post(tokenizer, text, budget=16, max_windows=100, overlap=0)
    assert len(post.sentences) == 1 and post.n_seen == post.n_tokens
    assert len(post.windows) == -(-post.n_tokens // 16)


def test_the_window_cap_cuts_a_pathological_post_and_says_so(tokenizer) -> None:  # type: ignore[no-untyped-def]
    post = window_post(tokenizer, "word " * 100_000, budget=126, max_windows=8, overlap=1)
    assert len(post.windows) == 8 and post.cut
    assert post.n_seen == 8 * 126 < post.n_tokens == 100_000


def test_a_post_without_tokens_still_gets_a_window(tokenizer) -> None:  # type: ignore[no-untyped-def]
    post = window_post(tokenizer, "\u200b", budget=16, max_windows=4)
    assert post.windows == ((),) and post.n_tokens == 0


def test_window_post_validates(tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="budget and max_windows must be >= 1"):
        window_post(tokenizer, "x", budget=0, max_windows=1)


def test_input_template_matches_the_tokenizer(tokenizer) -> None:  # type: ignore[no-untyped-def]
    pair = InputTemplate.of(tokenizer, pair=True)
    ids, types, offset = pair.build([5, 6, 7], [8, 9])
    expected = tokenizer("a b c", "d e", return_token_type_ids=True)
    assert len(ids) == len(expected["input_ids"]) and types == expected["token_type_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[offset : offset + 3] == [5, 6, 7]
    single = InputTemplate.of(tokenizer, pair=False)
    assert single.build([5, 6])[0] == [tokenizer.cls_token_id, 5, 6, tokenizer.sep_token_id]


@pytest.mark.parametrize("framing", ["multilabel", "pair"])
def test_a_batch_holds_whole_posts_with_sentence_labels(tokenizer, framing: str) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(
        {
            "post_id": ["a", "b"],
            "text": ["I cannot sleep. I am sad.", "A walk in the park."],
            "labels": [[1, 0, 0, 1, 0, 0, 0, 0, 0], [0] * 9],
            "evidence": [[(0, 15, 3), (16, 25, 0)], []],
        }
    )
    dataset = PostWindowsDataset(frame, tokenizer, EncodingSpec(max_length=96, framing=framing))
    batch = WindowCollator(dataset, tokenizer.pad_token_id)([dataset[0], dataset[1]])
    rows = 2 * (9 if framing == "pair" else 1)
    assert batch["input_ids"].shape[0] == rows
    assert batch["sentence_post"].tolist() == [0, 0, 1]
    assert batch["n_posts"] == 2 and batch["max_sentences"] == 2
    assert batch["labels"]["posts"][0].tolist() == [1, 0, 0, 1, 0, 0, 0, 0, 0]
    assert batch["labels"]["sentences"][:, [0, 3]].tolist() == [[0, 1], [1, 0], [0, 0]]
    assert set(batch["token_sentence"].unique().tolist()) == {-1, 0, 1, 2}
    assert ("row_criterion" in batch) == (framing == "pair")


def test_max_length_too_small_for_the_criterion_is_a_clear_error(tokenizer) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"post_id": ["a"], "text": ["x"]})
    with pytest.raises(ValueError, match=r"model\.max_length=24 leaves"):
        PostWindowsDataset(frame, tokenizer, EncodingSpec(max_length=24, framing="pair"))


def test_dataloaders_are_seeded_and_report_windowing(tokenizer, sample_posts) -> None:  # type: ignore[no-untyped-def]
    spec = EncodingSpec(max_length=64)
    first = build_dataloaders([sample_posts, sample_posts.head(10)], tokenizer, spec,
                              batch_size=8, eval_batch_size=4, seed=3)  # fmt: skip
    again = build_dataloaders([sample_posts], tokenizer, spec, batch_size=8, eval_batch_size=4,
                              seed=3)  # fmt: skip
    assert torch.equal(next(iter(first[0]))["input_ids"], next(iter(again[0]))["input_ids"])
    assert len(first[1]) == 3  # 10 posts, 4 a batch, in order
    stats = first[0].dataset.stats()
    assert stats.posts == len(sample_posts) and stats.pairs == 9 * len(sample_posts)
    assert stats.tokens_seen_fraction == 1.0 and stats.posts_cut == 0
    assert stats.windows_per_post > 1 and stats.tokens_max > 64
    assert set(stats.as_params("train")) >= {"data/train/posts", "data/train/tokens_p95"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size"), ({"num_workers": -1}, "num_workers")],
)
def test_build_dataloaders_validates(tokenizer, sample_posts, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    args = {"batch_size": 8, "eval_batch_size": 8, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_dataloaders([sample_posts], tokenizer, EncodingSpec(), **args)
