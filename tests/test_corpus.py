"""The synthetic corpus generator: exact shapes, valid annotations, determinism, variety."""

from __future__ import annotations

import random
import re
import runpy
import time
from pathlib import Path

import pandas as pd
import pytest

from psy_agents_noaug.data.corpus import (
    PROFILES,
    Corpus,
    CorpusProfile,
    confusers,
    connectives,
    evidence,
    filler,
    framing,
    generate,
    special_cases,
    split_sentences,
    write_corpus,
)
from psy_agents_noaug.data.corpus.confusers import CONFUSERS, ConfuserKind
from psy_agents_noaug.data.corpus.evidence import EVIDENCE, cores, realize_evidence
from psy_agents_noaug.data.corpus.profiles import REDSM5_POSITIVES
from psy_agents_noaug.data.corpus.templates import Persona, render
from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.data.redsm5 import ReDSM5Data, load_redsm5

REPO_ROOT = Path(__file__).resolve().parents[1]
SYMPTOM_OF = {c.id: c.symptom for c in CRITERIA}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = tmp_path_factory.mktemp("corpora")
    return {name: write_corpus(name, out / name) for name in PROFILES}


@pytest.fixture(scope="module")
def loaded(written: dict[str, tuple[Path, Path]]) -> dict[str, ReDSM5Data]:
    return {name: load_redsm5(*paths) for name, paths in written.items()}


def _words(data: ReDSM5Data) -> pd.Series:
    return data.posts["text"].str.split().str.len()


def _positive_posts(data: ReDSM5Data) -> dict[str, int]:
    ann = data.annotations
    positive = ann[(ann["status"] == 1) & (ann["DSM5_symptom"] != "SPECIAL_CASE")]
    return positive.groupby("DSM5_symptom")["post_id"].nunique().to_dict()


def _no_symptom_ids(data: ReDSM5Data) -> set[str]:
    ann = data.annotations
    positive = ann[(ann["status"] == 1) & (ann["DSM5_symptom"] != "SPECIAL_CASE")]
    return set(data.posts["post_id"]) - set(positive["post_id"])


# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_loads_through_the_reader_with_nothing_dropped(
    name: str, loaded: dict[str, ReDSM5Data]
) -> None:
    data = loaded[name]
    assert data.dropped == []
    assert data.label_fixes == {}
    assert len(data.posts) == PROFILES[name].n_posts
    assert set(data.annotations["status"]) == {0, 1}


def test_redsm5_counts_are_exact(loaded: dict[str, ReDSM5Data]) -> None:
    data = loaded["redsm5"]
    assert len(data.posts) == 1484
    assert len(_no_symptom_ids(data)) == 392
    expected = {SYMPTOM_OF[cid]: count for cid, count in REDSM5_POSITIVES.items()}
    assert _positive_posts(data) == expected
    assert expected == {
        "DEPRESSED_MOOD": 328,
        "ANHEDONIA": 124,
        "APPETITE_CHANGE": 44,
        "SLEEP_ISSUES": 102,
        "PSYCHOMOTOR": 35,
        "FATIGUE": 124,
        "WORTHLESSNESS": 311,
        "COGNITIVE_ISSUES": 59,
        "SUICIDAL_THOUGHTS": 165,
    }


def test_redsm5_lengths_have_the_real_mean_tail_and_one_outlier(
    loaded: dict[str, ReDSM5Data],
) -> None:
    words = _words(loaded["redsm5"])
    assert abs(words.mean() - 294.7) <= 0.05 * 294.7
    assert abs(words.max() - 6990) <= 60
    assert (words > 3500).sum() == 1  # one pathological post, far beyond the rest
    assert words.quantile(0.9) > 2 * words.median()  # a long right tail


def test_sample_profile_shape(loaded: dict[str, ReDSM5Data]) -> None:
    data = loaded["sample"]
    words = _words(data)
    assert len(data.posts) == 4000
    assert len(_no_symptom_ids(data)) == 1000
    positives = _positive_posts(data)
    assert set(positives) == set(SYMPTOM_OF.values())
    assert min(positives.values()) >= 333  # every criterion common enough to learn
    assert positives["DEPRESSED_MOOD"] > 2 * positives["PSYCHOMOTOR"]  # ReDSM5's proportions
    assert 52 <= words.median() <= 70
    assert 72 <= words.mean() <= 90
    assert 0.01 <= (words > 250).mean() <= 0.08  # a tail of long posts
    assert 600 <= words.max() <= 750


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_positive_posts_carry_one_to_three_criteria(
    name: str, loaded: dict[str, ReDSM5Data]
) -> None:
    ann = loaded[name].annotations
    positive = ann[(ann["status"] == 1) & (ann["DSM5_symptom"] != "SPECIAL_CASE")]
    per_post = positive.groupby("post_id")["DSM5_symptom"].nunique()
    assert per_post.between(1, 3).all()
    assert (per_post >= 2).mean() > 0.1


# --------------------------------------------------------------------------- annotations


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_sentence_text_is_the_sentence_its_id_names(
    name: str, loaded: dict[str, ReDSM5Data]
) -> None:
    data = loaded[name]
    sentences = {pid: split_sentences(text) for pid, text in zip(*data.posts.values.T, strict=True)}
    texts = dict(zip(data.posts["post_id"], data.posts["text"], strict=True))
    for row in data.annotations.itertuples(index=False):
        post_id, k = row.sentence_id.rsplit("_s", 1)
        assert post_id == row.post_id
        assert sentences[post_id][int(k)] == row.sentence_text, row.sentence_id
        text = texts[post_id]
        start = text.index(row.sentence_text)
        after = text[start + len(row.sentence_text) : start + len(row.sentence_text) + 1]
        assert row.sentence_text[-1] in ".!?" or after in ("", "\n"), row.sentence_id
        assert row.explanation.strip()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_hard_negatives_for_every_criterion_in_posts_with_and_without_symptoms(
    name: str, loaded: dict[str, ReDSM5Data]
) -> None:
    data = loaded[name]
    ann = data.annotations
    negatives = ann[ann["status"] == 0]
    no_symptom = _no_symptom_ids(data)
    in_clean = negatives[negatives["post_id"].isin(no_symptom)]
    in_positive = negatives[~negatives["post_id"].isin(no_symptom)]
    for symptom in SYMPTOM_OF.values():
        assert (in_clean["DSM5_symptom"] == symptom).sum() >= 5, symptom
        assert (in_positive["DSM5_symptom"] == symptom).sum() >= 5, symptom
    assert in_clean["post_id"].nunique() >= 0.8 * len(no_symptom)


def test_banks_have_every_kind_of_hard_negative_for_every_criterion() -> None:
    for symptom in SYMPTOM_OF.values():
        assert set(CONFUSERS[symptom]) == set(ConfuserKind), symptom
        assert all(len(bank) >= 3 for bank in CONFUSERS[symptom].values()), symptom


def test_words_are_shared_between_evidence_and_hard_negatives(
    loaded: dict[str, ReDSM5Data],
) -> None:
    ann = loaded["redsm5"].annotations
    for symptom, word in [
        ("SLEEP_ISSUES", "sleep"),
        ("APPETITE_CHANGE", "eat"),
        ("FATIGUE", "tired"),
        ("SUICIDAL_THOUGHTS", "die"),
        ("COGNITIVE_ISSUES", "focus"),
        ("DEPRESSED_MOOD", "sad"),
    ]:
        rows = ann[ann["DSM5_symptom"] == symptom]
        has_word = rows["sentence_text"].str.lower().str.contains(rf"\b{word}", regex=True)
        assert set(rows.loc[has_word, "status"]) == {0, 1}, symptom


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_same_profile_and_seed_give_byte_identical_files(
    name: str, written: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    again = write_corpus(name, tmp_path)
    for first, second in zip(written[name], again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_another_seed_gives_another_corpus_of_the_same_shape() -> None:
    base, other = generate("sample"), generate("sample", seed=7)
    assert base.posts["text"].tolist() != other.posts["text"].tolist()
    assert len(other.posts) == len(base.posts)
    assert _positive_posts(_as_data(other)) == _positive_posts(_as_data(base))


def test_redsm5_generates_in_under_ten_seconds() -> None:
    start = time.perf_counter()
    generate("redsm5")
    assert time.perf_counter() - start < 10


def test_bundled_sample_is_the_generated_sample() -> None:
    from psy_agents_noaug.data.sample import sample_paths

    posts_path, _ = sample_paths()
    bundled = pd.read_csv(posts_path, dtype=str, keep_default_na=False)
    assert bundled["text"].tolist() == generate("sample").posts["text"].tolist()


# --------------------------------------------------------------------------- variety


def test_status_1_sentences_are_varied(loaded: dict[str, ReDSM5Data]) -> None:
    ann = loaded["redsm5"].annotations
    evidence_rows = ann[(ann["status"] == 1) & (ann["DSM5_symptom"] != "SPECIAL_CASE")]
    for symptom, rows in evidence_rows.groupby("DSM5_symptom"):
        distinct = rows["sentence_text"].nunique()
        # Rare criteria have few posts (35 for PSYCHOMOTOR), so few sentences; each is new.
        assert distinct >= min(150, int(0.9 * len(rows))), symptom
    assert evidence_rows["sentence_text"].value_counts().max() <= 5


@pytest.mark.parametrize("symptom", [c.symptom for c in CRITERIA])
def test_each_criterion_has_many_cores_and_hundreds_of_realizations(symptom: str) -> None:
    assert len(cores(symptom)) >= 40
    assert len(set(cores(symptom))) == len(cores(symptom))
    rng = random.Random(symptom)
    texts = {
        realize_evidence(symptom, rng, Persona(), continuing=rng.random() < 0.5)[0]
        for _ in range(600)
    }
    assert len(texts) >= 450


@pytest.mark.parametrize(
    ("symptom", "facets"),
    [
        ("APPETITE_CHANGE", {"appetite loss", "appetite increase"}),
        ("SLEEP_ISSUES", {"insomnia", "hypersomnia"}),
        ("PSYCHOMOTOR", {"agitation", "slowing"}),
        ("SUICIDAL_THOUGHTS", {"passive death wish", "suicidal ideation"}),
        ("WORTHLESSNESS", {"worthlessness", "guilt"}),
    ],
)
def test_criteria_cover_both_directions_dsm_allows(symptom: str, facets: set[str]) -> None:
    assert {f.name for f in EVIDENCE[symptom]} == facets
    assert all(len(f.cores) >= 8 for f in EVIDENCE[symptom])


def test_long_posts_often_bring_their_evidence_late(loaded: dict[str, ReDSM5Data]) -> None:
    data = loaded["redsm5"]
    ann = data.annotations
    first_evidence = (
        ann[ann["status"] == 1]
        .assign(k=lambda f: f["sentence_id"].str.rsplit("_s", n=1).str[1].astype(int))
        .groupby("post_id")["k"]
        .min()
    )
    late = []
    for post_id, text in zip(data.posts["post_id"], data.posts["text"], strict=True):
        if post_id in first_evidence and len(text.split()) > 250:
            late.append(first_evidence[post_id] >= 0.6 * len(split_sentences(text)))
    assert len(late) > 300
    assert 0.3 <= sum(late) / len(late) <= 0.8


def test_posts_are_typed_in_different_voices(loaded: dict[str, ReDSM5Data]) -> None:
    texts = loaded["redsm5"].posts["text"]
    lowercase = texts.map(lambda t: t == t.lower())
    paragraphs = texts.str.contains("\n")
    no_apostrophe = texts.str.contains(r"\b(?:dont|cant|im|ive|didnt)\b", regex=True)
    tldr = texts.str.contains(r"(?i)\btl;?dr\b", regex=True)
    assert 0.08 <= lowercase.mean() <= 0.4
    assert 0.3 <= paragraphs.mean() <= 0.9
    assert no_apostrophe.mean() >= 0.15
    assert tldr.mean() >= 0.03


def test_posts_do_not_repeat_a_neutral_sentence(loaded: dict[str, ReDSM5Data]) -> None:
    data = loaded["sample"]
    repeats = 0
    for text in data.posts["text"]:
        sentences = [re.sub(r"[^a-z ]", "", s.lower()) for s in split_sentences(text)]
        repeats += len(sentences) - len(set(sentences))
    assert repeats <= 0.02 * len(data.posts)


def test_every_bank_template_renders() -> None:
    rng = random.Random(0)
    banks: list[tuple[str, ...]] = [
        *filler.TOPICS.values(),
        filler.INTRO,
        filler.QUESTIONS,
        filler.ONGOING,
        filler.COMMENTS,
        framing.OPENERS,
        framing.CLOSERS,
        framing.LONG_OPENERS,
        framing.LONG_CLOSERS,
        framing.NEUTRAL_TLDR,
        special_cases.SPECIAL_CASES,
        connectives.FOLLOW_UPS,
        connectives.PRESENT_LEADS,
        connectives.EVIDENCE_LEADS,
        connectives.EVIDENCE_TAILS,
        connectives.TIME_TAILS,
        *evidence.CONSEQUENCES.values(),
        *evidence.TLDR.values(),
        *(bank for kinds in confusers.CONFUSERS.values() for bank in kinds.values()),
        *(f.cores for facets in EVIDENCE.values() for f in facets),
    ]
    for bank in banks:
        for template in bank:
            for _ in range(5):
                text = render(template, rng, Persona())
                assert "{" not in text and "[" not in text, template
    for stories in filler.VIGNETTES.values():
        for story in stories:
            persona = Persona()
            for i, line in enumerate(story):
                render(line, rng, persona, fresh=i == 0)


# --------------------------------------------------------------------------- errors


def test_unknown_profile_is_a_value_error_naming_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown corpus profile 'tiny'.*sample.*redsm5"):
        generate("tiny")
    with pytest.raises(ValueError, match="valid profiles"):
        write_corpus("tiny", tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_no_symptom": 4000}, "n_no_symptom"),
        ({"positives": {"A.1": 10}}, "positives must give a count"),
        ({"positives": {**{f"A.{i}": 1 for i in range(1, 10)}}}, "positives must sum"),
        ({"median_words": 200}, "word lengths"),
        ({"outlier_words": 100}, "outlier_words"),
    ],
)
def test_profile_validates_its_fields(change: dict[str, object], message: str) -> None:
    fields = {**vars(PROFILES["sample"]), **change}
    with pytest.raises(ValueError, match=message):
        CorpusProfile(**fields)  # type: ignore[arg-type]


def test_script_writes_a_profile_and_needs_out_for_redsm5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "make_sample_data.py"), run_name="script")
    assert script["main"](["--profile", "sample", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert len(pd.read_csv(tmp_path / "posts.csv")) == 4000
    with pytest.raises(SystemExit) as refused:
        script["main"](["--profile", "redsm5"])
    assert refused.value.code == 2
    assert "--out is required" in capsys.readouterr().err


def _as_data(corpus: Corpus) -> ReDSM5Data:
    return ReDSM5Data(posts=corpus.posts, annotations=corpus.annotations)
