"""Reading ReDSM5-format CSVs: the bundled sample, label typos, and every malformed-file error."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from psy_agents_noaug.data import (
    ANNOTATIONS_COLUMNS,
    CRITERIA,
    SYMPTOMS,
    DataError,
    load_redsm5,
    normalize_symptom,
    sample_paths,
)
from psy_agents_noaug.data.corpus import PROFILES

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTS_HEADER = ["post_id", "text"]
ANN_HEADER = list(ANNOTATIONS_COLUMNS)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def posts_file(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "posts.csv",
        POSTS_HEADER,
        [["p1", "I can't sleep at all."], ["p2", "I feel fine, just tired."]],
    )


def ann(post_id: str, symptom: str, status: str, k: int = 1) -> list[str]:
    return [post_id, f"{post_id}_{k}", "some sentence", symptom, status, "why"]


def write_annotations(tmp_path: Path, rows: list[list[str]]) -> Path:
    return write_csv(tmp_path / "annotations.csv", ANN_HEADER, rows)


def test_bundled_sample_loads_with_positives_and_negatives_for_every_criterion() -> None:
    data = load_redsm5(*sample_paths())
    assert data.dropped == []
    assert data.label_fixes == {}
    assert len(data.posts) == PROFILES["sample"].n_posts
    assert data.posts["post_id"].is_unique
    counts = data.annotations.groupby(["DSM5_symptom", "status"]).size()
    for criterion in CRITERIA:
        assert counts.get((criterion.symptom, 1), 0) >= 20, criterion.symptom
        assert counts.get((criterion.symptom, 0), 0) >= 20, criterion.symptom
    assert "SPECIAL_CASE" in set(data.annotations["DSM5_symptom"])
    assert set(data.annotations["post_id"]) <= set(data.posts["post_id"])


def test_bundled_sample_is_reproduced_by_its_script(tmp_path: Path) -> None:
    script = REPO_ROOT / "scripts" / "make_sample_data.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, timeout=60)
    for bundled in sample_paths():
        assert (tmp_path / bundled.name).read_bytes() == bundled.read_bytes(), bundled.name


def test_bundled_sample_sentences_are_in_their_posts() -> None:
    data = load_redsm5(*sample_paths())
    texts = dict(zip(data.posts["post_id"], data.posts["text"], strict=True))
    for post_id, sentence in zip(
        data.annotations["post_id"], data.annotations["sentence_text"], strict=True
    ):
        assert sentence in texts[post_id]


def test_bundled_sample_is_not_separable_by_one_keyword() -> None:
    # The same words appear in sentences that show a symptom and in ones that deny it.
    data = load_redsm5(*sample_paths())
    for symptom, word in [("SLEEP_ISSUES", "sleep"), ("APPETITE_CHANGE", "appetite")]:
        rows = data.annotations[data.annotations["DSM5_symptom"] == symptom]
        has_word = rows["sentence_text"].str.lower().str.contains(word)
        assert set(rows.loc[has_word, "status"]) == {0, 1}


def test_load_returns_clean_frames(tmp_path: Path, posts_file: Path) -> None:
    annotations = write_annotations(
        tmp_path, [ann("p1", "SLEEP_ISSUES", "1"), ann("p2", "FATIGUE", "0")]
    )
    data = load_redsm5(posts_file, annotations)
    assert list(data.posts.columns) == ["post_id", "text"]
    assert list(data.annotations.columns) == ANN_HEADER
    assert data.annotations["status"].tolist() == [1, 0]
    assert str(data.annotations["status"].dtype) == "int64"
    assert data.dropped == []


def test_headers_match_ignoring_case_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    posts = write_csv(
        tmp_path / "p.csv", [" Post_ID ", "TEXT", "subreddit"], [["p1", "hello there", "r/x"]]
    )
    annotations = write_csv(
        tmp_path / "a.csv",
        [c.upper() for c in ANN_HEADER] + ["annotator"],
        [[*ann("p1", "FATIGUE", "1"), "a1"]],
    )
    data = load_redsm5(posts, annotations)
    assert list(data.posts.columns) == ["post_id", "text"]
    assert list(data.annotations.columns) == ANN_HEADER
    assert data.annotations.loc[0, "DSM5_symptom"] == "FATIGUE"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SLEEP_ISSUE", "SLEEP_ISSUES"),
        ("sleep issues", "SLEEP_ISSUES"),
        ("Cognitive_Issues", "COGNITIVE_ISSUES"),
        (" fatigue ", "FATIGUE"),
        ("DEPRESED_MOOD", "DEPRESSED_MOOD"),
        ("Suicidal-Thoughts", "SUICIDAL_THOUGHTS"),
        ("APPETITE_CHANGES", "APPETITE_CHANGE"),
        ("specialcase", "SPECIAL_CASE"),
        ("WORTHLESNESS", "WORTHLESSNESS"),
    ],
)
def test_label_typos_are_normalised(
    tmp_path: Path, posts_file: Path, raw: str, expected: str
) -> None:
    assert normalize_symptom(raw) == expected
    data = load_redsm5(posts_file, write_annotations(tmp_path, [ann("p1", raw, "1")]))
    assert data.annotations["DSM5_symptom"].tolist() == [expected]
    assert data.label_fixes == {raw: expected}


@pytest.mark.parametrize("raw", ["LEADEN_PARALYSIS", "ANXIETY", "MOOD", "SLEEPY_CAT"])
def test_unknown_labels_are_not_guessed(raw: str) -> None:
    assert normalize_symptom(raw) is None


def test_unknown_symptom_names_raise_listing_them_and_valid_names(
    tmp_path: Path, posts_file: Path
) -> None:
    annotations = write_annotations(
        tmp_path,
        [
            ann("p1", "LEADEN_PARALYSIS", "1"),
            ann("p1", "ANXIETY", "1", 2),
            ann("p2", "ANXIETY", "0"),
            ann("p2", "FATIGUE", "1", 2),
        ],
    )
    with pytest.raises(DataError) as info:
        load_redsm5(posts_file, annotations)
    message = str(info.value)
    assert "'LEADEN_PARALYSIS' (1 rows)" in message
    assert "'ANXIETY' (2 rows)" in message
    assert all(symptom in message for symptom in SYMPTOMS)
    assert str(annotations) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("status", "expected"), [("1", 1), ("0", 0), ("1.0", 1), ("0.0", 0), (" TRUE ", 1), ("no", 0)]
)
def test_status_is_coerced_to_int(
    tmp_path: Path, posts_file: Path, status: str, expected: int
) -> None:
    data = load_redsm5(posts_file, write_annotations(tmp_path, [ann("p1", "FATIGUE", status)]))
    assert data.annotations["status"].tolist() == [expected]


def test_unparsable_status_rows_are_dropped_and_reported(tmp_path: Path, posts_file: Path) -> None:
    annotations = write_annotations(
        tmp_path,
        [
            ann("p1", "FATIGUE", "1"),
            ann("p1", "SLEEP_ISSUES", "maybe", 2),
            ann("p2", "ANHEDONIA", "", 1),
            ann("p2", "ANHEDONIA", "2", 2),
        ],
    )
    data = load_redsm5(posts_file, annotations)
    assert data.annotations["DSM5_symptom"].tolist() == ["FATIGUE"]
    assert len(data.dropped) == 3
    assert "data row 2 (post_id='p1'): status 'maybe' is not 0/1" in data.dropped[0]
    assert "status '' is not 0/1" in data.dropped[1]
    assert "status '2' is not 0/1" in data.dropped[2]
    assert all(line.startswith("annotations.csv") for line in data.dropped)


def test_annotations_of_unknown_posts_are_dropped_and_reported(
    tmp_path: Path, posts_file: Path
) -> None:
    annotations = write_annotations(
        tmp_path,
        [ann("p1", "FATIGUE", "1"), ann("ghost", "FATIGUE", "1"), ann(" p2 ", "FATIGUE", "0")],
    )
    data = load_redsm5(posts_file, annotations)
    assert data.annotations["post_id"].tolist() == ["p1", "p2"]  # whitespace around ids forgiven
    assert data.dropped == [
        "annotations.csv data row 2 (post_id='ghost'): post_id is not in the posts file"
    ]


def test_empty_labels_and_empty_posts_are_dropped_and_reported(tmp_path: Path) -> None:
    posts = write_csv(
        tmp_path / "posts.csv", POSTS_HEADER, [["p1", "text one"], ["p2", "   "], ["", "orphan"]]
    )
    annotations = write_annotations(tmp_path, [ann("p1", "FATIGUE", "1"), ann("p1", " ", "1", 2)])
    data = load_redsm5(posts, annotations)
    assert data.posts["post_id"].tolist() == ["p1"]
    assert data.dropped == [
        "posts.csv data row 2 (post_id='p2'): empty text",
        "posts.csv data row 3: empty post_id",
        "annotations.csv data row 2 (post_id='p1'): empty DSM5_symptom",
    ]


def test_missing_file_raises(tmp_path: Path, posts_file: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"annotations file not found: .*nope\.csv.*fix"):
        load_redsm5(posts_file, missing)
    with pytest.raises(DataError, match=r"posts file not found.*data\.posts_path"):
        load_redsm5(missing, posts_file)


def test_directory_instead_of_file_raises(tmp_path: Path, posts_file: Path) -> None:
    with pytest.raises(DataError, match="annotations path is not a file"):
        load_redsm5(posts_file, tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file_raises(tmp_path: Path, posts_file: Path, content: bytes) -> None:
    empty = tmp_path / "annotations.csv"
    empty.write_bytes(content)
    with pytest.raises(DataError, match=r"annotations file is empty: .*annotations\.csv.*header"):
        load_redsm5(posts_file, empty)


def test_header_only_file_raises(tmp_path: Path, posts_file: Path) -> None:
    posts = write_csv(tmp_path / "header_only.csv", POSTS_HEADER, [])
    with pytest.raises(DataError, match=r"posts file has a header but no data rows: .*header_only"):
        load_redsm5(posts, write_annotations(tmp_path, [ann("p1", "FATIGUE", "1")]))


def test_missing_columns_are_named(tmp_path: Path, posts_file: Path) -> None:
    annotations = write_csv(
        tmp_path / "annotations.csv",
        ["post_id", "sentence_text", "DSM5_symptom"],
        [["p1", "s", "FATIGUE"]],
    )
    with pytest.raises(DataError) as info:
        load_redsm5(posts_file, annotations)
    message = str(info.value)
    assert "missing column(s) ['sentence_id', 'status', 'explanation']" in message
    assert "annotations.csv" in message
    assert "fix:" in message


def test_missing_posts_column_is_named(tmp_path: Path) -> None:
    posts = write_csv(tmp_path / "posts.csv", ["id", "text"], [["p1", "hello"]])
    with pytest.raises(DataError, match=r"posts file is missing column\(s\) \['post_id'\]"):
        load_redsm5(posts, write_annotations(tmp_path, [ann("p1", "FATIGUE", "1")]))


def test_duplicate_post_ids_raise(tmp_path: Path) -> None:
    posts = write_csv(
        tmp_path / "posts.csv",
        POSTS_HEADER,
        [["p1", "a"], ["p2", "b"], ["p1 ", "c"], ["p3", "d"], ["p2", "e"]],
    )
    with pytest.raises(DataError) as info:
        load_redsm5(posts, write_annotations(tmp_path, [ann("p1", "FATIGUE", "1")]))
    message = str(info.value)
    assert "posts file repeats post_id 'p1', 'p2'" in message
    assert "posts.csv" in message
    assert "\n" not in message


def test_duplicate_column_raises(tmp_path: Path) -> None:
    posts = tmp_path / "posts.csv"
    posts.write_text("post_id,text,Text\np1,a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'Text' twice"):
        load_redsm5(posts, write_annotations(tmp_path, [ann("p1", "FATIGUE", "1")]))


def test_ragged_csv_raises_unreadable(tmp_path: Path, posts_file: Path) -> None:
    bad = tmp_path / "annotations.csv"
    bad.write_text(
        ",".join(ANN_HEADER) + "\np1,s1,x,FATIGUE,1,why\np1,s2,x,FATIGUE,1,why,extra,more\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"annotations file is not a readable CSV: .*fix: save it"):
        load_redsm5(posts_file, bad)


def test_non_utf8_file_raises_unreadable(tmp_path: Path, posts_file: Path) -> None:
    bad = tmp_path / "posts_latin1.csv"
    bad.write_bytes("post_id,text\np1,caf\xe9 na\xefve\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"posts file is not a readable CSV: .*posts_latin1.*UTF-8"):
        load_redsm5(bad, posts_file)


def test_no_usable_annotation_rows_raises(tmp_path: Path, posts_file: Path) -> None:
    annotations = write_annotations(
        tmp_path, [ann("ghost", "FATIGUE", "1"), ann("p1", "FATIGUE", "??")]
    )
    with pytest.raises(DataError, match="annotations file has no usable rows"):
        load_redsm5(posts_file, annotations)


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError)
