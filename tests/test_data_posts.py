"""Criteria, post labels and evidence spans, and post-grouped reproducible splits."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from psy_agents_noaug.data import (
    ANNOTATIONS_COLUMNS,
    CRITERIA,
    SYMPTOMS,
    ReDSM5Data,
    build_post_examples,
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
def sample_posts() -> pd.DataFrame:
    return build_post_examples(load_redsm5(*sample_paths())).frame


def make_data(posts: list[tuple[str, str]], annotations: list[tuple[str, str, int]]) -> ReDSM5Data:
    """Posts and annotations whose sentence is the whole post."""
    text = dict(posts)
    rows = [
        (post_id, f"{post_id}_{k}", text[post_id], symptom, status, "why")
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


def test_post_labels_and_evidence_follow_positive_annotations() -> None:
    data = make_data(
        posts=[("p1", "I cannot sleep. I am tired."), ("p2", "Nothing works. I want to die.")],
        annotations=[
            ("p1", "SLEEP_ISSUES", 0),  # a denial and an evidence sentence: positive wins
            ("p1", "SLEEP_ISSUES", 1),
            ("p1", "FATIGUE", 0),
            ("p1", "SPECIAL_CASE", 1),
            ("p2", "SUICIDAL_THOUGHTS", 1),
            ("p2", "DEPRESSED_MOOD", 1),
        ],
    )
    examples = build_post_examples(data)
    frame = examples.frame
    assert frame["post_id"].tolist() == ["p1", "p2"]
    labels = dict(zip(frame["post_id"], frame["labels"], strict=True))
    ids = [c.id for c in CRITERIA]
    assert [ids[i] for i, v in enumerate(labels["p1"]) if v] == ["A.4"]
    assert [ids[i] for i, v in enumerate(labels["p2"]) if v] == ["A.1", "A.9"]
    # make_data's sentence text is the whole post: the span covers it.
    assert frame.loc[0, "evidence"] == [(0, len("I cannot sleep. I am tired."), 3)]
    assert examples.unmatched == 0


def test_evidence_is_found_with_other_spacing_and_counted_when_absent() -> None:
    data = make_data(posts=[("p1", "I   cannot\nsleep at all. Other.")], annotations=[])
    data.annotations = pd.DataFrame(
        [
            ("p1", "p1_s0", "I cannot sleep at all.", "SLEEP_ISSUES", 1, ""),
            ("p1", "p1_s9", "A sentence from elsewhere.", "FATIGUE", 1, ""),
        ],
        columns=list(ANNOTATIONS_COLUMNS),
    )
    examples = build_post_examples(data)
    assert examples.frame.loc[0, "evidence"] == [(0, len("I   cannot\nsleep at all."), 3)]
    assert examples.unmatched == 1
    assert examples.frame.loc[0, "labels"][5] == 1  # the label still counts


def test_posts_without_annotations_have_no_label() -> None:
    data = make_data(posts=[("p1", "a"), ("p2", "b")], annotations=[("p1", "FATIGUE", 1)])
    frame = build_post_examples(data).frame
    assert sum(frame.loc[1, "labels"]) == 0 and sum(frame.loc[0, "labels"]) == 1


def test_sample_posts_shape_and_balance(sample_posts: pd.DataFrame) -> None:
    labels = pd.DataFrame(sample_posts["labels"].tolist())
    # ReDSM5's imbalance (about one positive criterion per post), with every criterion on
    # at least 333 of the 4,000 posts so a small model can learn the rare ones.
    assert 0.08 <= labels.to_numpy().mean() <= 0.2
    assert ((labels.mean() >= 333 / 4000) & (labels.mean() < 0.3)).all()
    assert (labels.sum(axis=1) == 0).mean() == pytest.approx(0.25, abs=0.02)


def test_splits_are_grouped_by_post(sample_posts: pd.DataFrame) -> None:
    splits = split_by_post(sample_posts, val_fraction=0.15, test_fraction=0.15, seed=42)
    train, val, test = (set(s["post_id"]) for s in (splits.train, splits.val, splits.test))
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(sample_posts["post_id"])
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(sample_posts)
    for split in (splits.train, splits.val, splits.test):
        assert split["post_id"].is_unique
        assert list(split.index) == list(range(len(split)))
    n_posts = sample_posts["post_id"].nunique()
    assert len(val) == round(0.15 * n_posts)
    assert len(test) == round(0.15 * n_posts)


def test_splits_are_reproducible_from_the_seed(sample_posts: pd.DataFrame) -> None:
    first = split_by_post(sample_posts, seed=7)
    again = split_by_post(sample_posts, seed=7)
    other = split_by_post(sample_posts, seed=8)
    pd.testing.assert_frame_equal(first.train, again.train)
    pd.testing.assert_frame_equal(first.val, again.val)
    pd.testing.assert_frame_equal(first.test, again.test)
    assert set(first.val["post_id"]) != set(other.val["post_id"])


def test_splits_do_not_depend_on_row_order(sample_posts: pd.DataFrame) -> None:
    shuffled = sample_posts.sample(frac=1.0, random_state=3)
    a, b = split_by_post(sample_posts, seed=1), split_by_post(shuffled, seed=1)
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
    sample_posts: pd.DataFrame, val_fraction: float, test_fraction: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_post(sample_posts, val_fraction=val_fraction, test_fraction=test_fraction)


def test_split_that_would_be_empty_raises() -> None:
    pairs = pd.DataFrame({"post_id": ["p1", "p2", "p3"], "label": [0, 1, 0]})
    with pytest.raises(ValueError, match=r"the val split would be empty: 3 posts"):
        split_by_post(pairs, val_fraction=0.1, test_fraction=0.1)
    splits = split_by_post(pairs, val_fraction=0.34, test_fraction=0.34)
    assert [len(splits.train), len(splits.val), len(splits.test)] == [1, 1, 1]


def test_split_needs_post_id_column() -> None:
    with pytest.raises(ValueError, match="'post_id' column"):
        split_by_post(pd.DataFrame({"id": ["a", "b"]}))


def test_max_train_posts_keeps_a_reproducible_subset_and_whole_val_and_test() -> None:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.training.recipe import load_splits

    full = load_splits(load_config([]))
    cut = load_splits(load_config(["data.max_train_posts=100"]))
    again = load_splits(load_config(["data.max_train_posts=100"]))
    other_seed = load_splits(load_config(["data.max_train_posts=100", "seed=7"]))
    assert len(cut.train) == 100 and set(cut.train["post_id"]) < set(full.train["post_id"])
    assert cut.train["post_id"].tolist() == again.train["post_id"].tolist()
    assert set(cut.train["post_id"]) != set(other_seed.train["post_id"])
    assert cut.val["post_id"].tolist() == full.val["post_id"].tolist()
    assert cut.test["post_id"].tolist() == full.test["post_id"].tolist()
