"""Criteria, (post, criterion) pair labels, and post-grouped reproducible splits."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from psy_agents_noaug.data import (
    ANNOTATIONS_COLUMNS,
    CRITERIA,
    PAIR_COLUMNS,
    SYMPTOMS,
    ReDSM5Data,
    build_criteria_pairs,
    criterion_by_id,
    criterion_by_symptom,
    load_redsm5,
    sample_paths,
    split_by_post,
)

EXPECTED_SYMPTOMS = [
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
]


@pytest.fixture(scope="module")
def sample_pairs() -> pd.DataFrame:
    return build_criteria_pairs(load_redsm5(*sample_paths()))


def make_data(posts: list[tuple[str, str]], annotations: list[tuple[str, str, int]]) -> ReDSM5Data:
    rows = [
        (post_id, f"{post_id}_{k}", "sentence", symptom, status, "why")
        for k, (post_id, symptom, status) in enumerate(annotations)
    ]
    frame = pd.DataFrame(rows, columns=list(ANNOTATIONS_COLUMNS))
    frame["status"] = frame["status"].astype("int64")
    return ReDSM5Data(
        posts=pd.DataFrame(posts, columns=["post_id", "text"]), annotations=frame, dropped=[]
    )


def test_criteria_are_a1_to_a9_in_order() -> None:
    assert [c.id for c in CRITERIA] == [f"A.{i}" for i in range(1, 10)]
    assert [c.symptom for c in CRITERIA] == EXPECTED_SYMPTOMS
    assert list(SYMPTOMS) == [*EXPECTED_SYMPTOMS, "SPECIAL_CASE"]
    for criterion in CRITERIA:
        assert criterion.name and len(criterion.name) < 50
        assert 40 < len(criterion.description) < 200
    assert len({c.description for c in CRITERIA}) == 9


def test_criterion_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CRITERIA[0].description = "changed"  # type: ignore[misc]


def test_criterion_lookups() -> None:
    assert criterion_by_id("A.4").symptom == "SLEEP_ISSUES"
    assert criterion_by_symptom("SUICIDAL_THOUGHTS").id == "A.9"
    for criterion in CRITERIA:
        assert criterion_by_id(criterion.id) is criterion
        assert criterion_by_symptom(criterion.symptom) is criterion


@pytest.mark.parametrize("bad", ["A.10", "a.1", "", "A1"])
def test_criterion_by_id_rejects_unknown_ids_naming_valid_ones(bad: str) -> None:
    with pytest.raises(ValueError, match=r"unknown criterion id .*valid ids: A\.1, A\.2,.*A\.9"):
        criterion_by_id(bad)


@pytest.mark.parametrize("bad", ["SPECIAL_CASE", "sleep_issues", "LEADEN_PARALYSIS"])
def test_criterion_by_symptom_rejects_non_criteria_naming_valid_ones(bad: str) -> None:
    with pytest.raises(ValueError, match=r"no criterion for symptom .*DEPRESSED_MOOD.*SUICIDAL"):
        criterion_by_symptom(bad)


def test_pair_labels_follow_positive_annotations() -> None:
    data = make_data(
        posts=[("p1", "post one"), ("p2", "post two")],
        annotations=[
            ("p1", "SLEEP_ISSUES", 0),  # a denial and an evidence sentence: positive wins
            ("p1", "SLEEP_ISSUES", 1),
            ("p1", "FATIGUE", 0),
            ("p1", "SPECIAL_CASE", 1),
            ("p2", "SUICIDAL_THOUGHTS", 1),
            ("p2", "DEPRESSED_MOOD", 1),
        ],
    )
    pairs = build_criteria_pairs(data)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert len(pairs) == 18
    assert pairs["post_id"].tolist() == ["p1"] * 9 + ["p2"] * 9
    assert pairs["criterion_id"].tolist() == [c.id for c in CRITERIA] * 2
    positives = pairs[pairs["label"] == 1]
    assert sorted(zip(positives["post_id"], positives["criterion_id"], strict=True)) == [
        ("p1", "A.4"),
        ("p2", "A.1"),
        ("p2", "A.9"),
    ]
    assert str(pairs["label"].dtype) == "int64"
    assert pairs.loc[0, "text"] == "post one"
    assert pairs["criterion_text"].tolist()[:9] == [c.description for c in CRITERIA]


def test_posts_without_annotations_give_all_negative_pairs() -> None:
    data = make_data(posts=[("p1", "a"), ("p2", "b")], annotations=[("p1", "FATIGUE", 1)])
    pairs = build_criteria_pairs(data)
    assert pairs.loc[pairs["post_id"] == "p2", "label"].sum() == 0
    assert pairs.loc[pairs["post_id"] == "p1", "label"].sum() == 1


def test_sample_pairs_shape_and_balance(sample_pairs: pd.DataFrame) -> None:
    assert len(sample_pairs) == 9 * sample_pairs["post_id"].nunique()
    # ReDSM5's imbalance (about one positive criterion per post), with every criterion on
    # at least 40 of the 480 posts so a small model can learn the rare ones.
    assert 0.08 <= sample_pairs["label"].mean() <= 0.2
    per_criterion = sample_pairs.groupby("criterion_id")["label"].mean()
    assert ((per_criterion >= 40 / 480) & (per_criterion < 0.3)).all()


def test_splits_are_grouped_by_post(sample_pairs: pd.DataFrame) -> None:
    splits = split_by_post(sample_pairs, val_fraction=0.15, test_fraction=0.15, seed=42)
    train, val, test = (set(s["post_id"]) for s in (splits.train, splits.val, splits.test))
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(sample_pairs["post_id"])
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(sample_pairs)
    for split in (splits.train, splits.val, splits.test):
        assert (split.groupby("post_id").size() == 9).all()
        assert list(split.index) == list(range(len(split)))
    n_posts = sample_pairs["post_id"].nunique()
    assert len(val) == round(0.15 * n_posts)
    assert len(test) == round(0.15 * n_posts)


def test_splits_are_reproducible_from_the_seed(sample_pairs: pd.DataFrame) -> None:
    first = split_by_post(sample_pairs, seed=7)
    again = split_by_post(sample_pairs, seed=7)
    other = split_by_post(sample_pairs, seed=8)
    pd.testing.assert_frame_equal(first.train, again.train)
    pd.testing.assert_frame_equal(first.val, again.val)
    pd.testing.assert_frame_equal(first.test, again.test)
    assert set(first.val["post_id"]) != set(other.val["post_id"])


def test_splits_do_not_depend_on_row_order(sample_pairs: pd.DataFrame) -> None:
    shuffled = sample_pairs.sample(frac=1.0, random_state=3)
    a, b = split_by_post(sample_pairs, seed=1), split_by_post(shuffled, seed=1)
    assert set(a.val["post_id"]) == set(b.val["post_id"])
    assert set(a.test["post_id"]) == set(b.test["post_id"])


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction", "message"),
    [
        (0.0, 0.15, "val_fraction must be in"),
        (1.0, 0.15, "val_fraction must be in"),
        (0.15, -0.1, "test_fraction must be in"),
        (0.15, 1.5, "test_fraction must be in"),
        (0.5, 0.5, "must be < 1"),
        (0.6, 0.45, "must be < 1"),
    ],
)
def test_split_fractions_out_of_range_raise(
    sample_pairs: pd.DataFrame, val_fraction: float, test_fraction: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_post(sample_pairs, val_fraction=val_fraction, test_fraction=test_fraction)


def test_split_that_would_be_empty_raises() -> None:
    pairs = pd.DataFrame({"post_id": ["p1", "p2", "p3"], "label": [0, 1, 0]})
    with pytest.raises(ValueError, match=r"the val split would be empty: 3 posts"):
        split_by_post(pairs, val_fraction=0.1, test_fraction=0.1)
    splits = split_by_post(pairs, val_fraction=0.34, test_fraction=0.34)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [1, 1, 1]


def test_split_needs_post_id_column() -> None:
    with pytest.raises(ValueError, match="'post_id' column"):
        split_by_post(pd.DataFrame({"id": ["a", "b"]}))
