"""The bad-input matrix: config values, data files and CLI arguments a user gets wrong.

Each case runs the real CLI entry point and must give exit code 2, exactly one line on
stderr that starts with ``error:`` and names the problem, and leave nothing half-written:
no run in the store, no journal, no checkpoint folder.

Odd posts (a 100,000-character one, an empty or whitespace-only text, only emoji) are not
mistakes that stop training: each gives one warning that counts what happened to it
(skipped, or cut at the window cap), or is read like any other post; never a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main
from psy_agents_noaug.data.splits import split_by_post

POSTS_HEADER = "post_id,text\n"
ANN_HEADER = "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"

# Bad data files, written per case: name -> (posts.csv bytes or None = the good file,
# annotations.csv bytes or None = the good file).
BAD_FILES: dict[str, tuple[bytes | None, bytes | None]] = {
    "empty_posts": (b"", None),
    "header_only_posts": (POSTS_HEADER.encode(), None),
    "posts_without_text": (b"post_id,body\np1,I cannot sleep\n", None),
    "duplicate_post_ids": (POSTS_HEADER.encode() + b"p1,a\np1,b\n", None),
    "non_utf8_posts": (POSTS_HEADER.encode() + b"p1,caf\xe9 \xff\xfe\n", None),
    "unknown_symptom": (None, ANN_HEADER.encode() + b"{post},s1,x,HAPPINESS,1,\n"),
}

# (case id, command-line arguments, text the error line must contain). In arguments,
# {posts}/{ann} are the data files, {uri} the store, {tmp} the case's folder. `train`
# cases get the tiny-model base overrides unless they override the same key.
CASES: list[tuple[str, list[str], str]] = [
    # -- config values
    ("negative_epochs", ["train", "training.num_epochs=-1"], "training.num_epochs=-1"),
    ("epochs_not_int", ["train", "training.num_epochs=two"], "training.num_epochs='two'"),
    ("zero_batch", ["train", "training.batch_size=0"], "training.batch_size=0"),
    ("negative_lr", ["train", "training.optimizer.lr=-0.001"], "training.optimizer.lr"),
    ("dropout_above_1", ["train", "model.dropout=1.5"], "model.dropout=1.5"),
    ("unknown_device", ["train", "device=tpu"], "device='tpu'"),
    ("unknown_optimizer", ["train", "training.optimizer.name=lion"], "adamw, adam or sgd"),
    ("bad_early_stop_mode", ["train", "training.early_stopping.mode=up"], "max or min"),
    ("fractions_too_big", ["train", "data.val_fraction=0.5", "data.test_fraction=0.45"],
     "leaves too little to train on"),
    ("unknown_model", ["train", "model=gpt9"], "unknown model 'gpt9'"),
    ("unknown_key", ["train", "training.lr=1"], "unknown config key 'training.lr'"),
    ("added_key", ["train", "+training.foo=1"], "unknown config key 'training.foo'"),
    ("unknown_encoder_offline", ["train", "model.encoder_name=org/no-such-encoder"],
     "cannot load encoder"),
    ("posts_without_annotations", ["train", "data.annotations_path=null"], "go together"),
    # -- the criteria model's keys (and the ones it removed)
    ("removed_pooling_key", ["train", "model.pooling=mean"], "unknown config key 'model.pooling'"),
    ("removed_num_labels_key", ["train", "task.num_labels=2"],
     "unknown config key 'task.num_labels'"),
    ("unknown_framing", ["train", "model.framing=triplet"], "model.framing='triplet'"),
    ("unknown_aggregation", ["train", "model.aggregation=mean"], "max, noisy_or or lse"),
    ("unknown_profile", ["train", "data.profile=huge"], "data.profile='huge'"),
    ("negative_pos_weight", ["train", "training.pos_weight=-1"], "auto, none or a number > 0"),
    ("zero_window_cap", ["train", "data.max_windows_per_post=0"],
     "data.max_windows_per_post=0"),
    ("negative_overlap", ["train", "data.window_overlap=-1"], "data.window_overlap=-1"),
    ("zero_train_posts", ["train", "data.max_train_posts=0"], "data.max_train_posts=0"),
    ("threshold_tolerance_above_one", ["train", "training.threshold_tolerance=2"],
     "training.threshold_tolerance=2"),
    ("stage_train_posts_zero", ["hpo", "stage=stage0", "stage.max_train_posts=0"],
     "stage.max_train_posts=0"),
    ("negative_sentence_weight", ["train", "training.sentence_loss_weight=-1"],
     "training.sentence_loss_weight=-1"),
    ("save_optimizer_not_bool", ["train", "training.save_optimizer=maybe"],
     "training.save_optimizer='maybe'"),
    # -- tracking stores
    ("unreachable_server", ["train", "mlflow.tracking_uri=http://127.0.0.1:9"],
     "cannot reach the tracking server"),
    ("unknown_uri_scheme", ["train", "mlflow.tracking_uri=ftp://example.org/mlflow"],
     "is not a tracking URI"),
    ("unreachable_database",
     ["train", "mlflow.tracking_uri=postgresql+psycopg2://u:secret@127.0.0.1:1/mlflow"],
     "cannot connect to the database"),
    ("store_folder_missing", ["train", "mlflow.tracking_uri=sqlite:///{tmp}/nope/mlflow.db"],
     "does not exist"),
    # -- HPO stages
    ("unknown_stage", ["hpo", "stage=stage9"], "unknown stage 'stage9'"),
    ("zero_trials", ["hpo", "stage.n_trials=0"], "stage.n_trials=0"),
    ("unknown_sampler", ["hpo", "stage.sampler=annealing"], "stage.sampler"),
    ("storage_not_a_url", ["hpo", "stage.storage=optuna.db"], "stage.storage"),
    # -- data files
    ("missing_posts_file", ["train", "data.posts_path={tmp}/missing.csv"], "missing.csv"),
    ("posts_path_is_a_folder", ["train", "data.posts_path={tmp}"], "{tmp}"),
    ("empty_posts", ["train"], "posts.csv"),
    ("header_only_posts", ["train"], "posts.csv"),
    ("posts_without_text", ["train"], "text"),
    ("duplicate_post_ids", ["train"], "p1"),
    ("non_utf8_posts", ["train"], "UTF-8"),
    ("unknown_symptom", ["train"], "HAPPINESS"),
    # -- CLI arguments
    ("unknown_command", ["fly"], "unknown command 'fly'"),
    ("not_key_value", ["train", "oops"], "is not key=value"),
    ("evaluate_without_target", ["evaluate"], "exactly one of run_id=ID or checkpoint=PATH"),
    ("evaluate_missing_checkpoint", ["evaluate", "checkpoint={tmp}/none.pt"], "none.pt"),
    ("register_without_run", ["register"], "register needs run_id=ID"),
    ("predict_without_input", ["predict", "model_uri=models:/m@production"], "input="),
    ("predict_bad_threshold", ["predict", "model_uri=m", "input=p.csv", "threshold=2"],
     "threshold=2"),
    ("frozen_layers_too_many", ["train", "model.frozen_layers=5"], "the encoder has 2 layers"),
    ("resume_from_nothing", ["train", "resume_from={tmp}/none.pt"], "none.pt"),
    ("resume_from_unknown_run", ["train", "resume_from=" + "0" * 32], "no run '000"),
    ("sync_without_journal", ["sync"], "sync needs the journal path"),
    ("doctor_bad_stale_after", ["doctor", "stale_after_s=soon"], "stale_after_s='soon'"),
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One sqlite store and journal folder for the module: no case may add anything to them."""
    import mlflow

    from psy_agents_noaug.tracking import sink as metric_sink

    folder = tmp_path_factory.mktemp("bad_inputs_store")
    uri = f"sqlite:///{folder}/mlflow.db"
    yield uri, folder / "journal"
    while mlflow.active_run() is not None:
        mlflow.end_run()
    metric_sink.shutdown()
    mlflow.set_tracking_uri(None)


def _write_bad_files(case: str, folder: Path, good: tuple[Path, Path]) -> tuple[Path, Path]:
    posts, ann = good
    bad_posts, bad_ann = BAD_FILES.get(case, (None, None))
    if bad_posts is not None:
        posts = folder / "posts.csv"
        posts.write_bytes(bad_posts)
    if bad_ann is not None:
        first_post = good[0].read_text().splitlines()[1].split(",")[0]
        ann = folder / "annotations.csv"
        ann.write_bytes(bad_ann.replace(b"{post}", first_post.encode()))
    return posts, ann


def _arguments(args: list[str], posts: Path, ann: Path, uri: str, tmp: Path, journal: Path):
    command, given = args[0], [a.format(tmp=tmp) for a in args[1:]]
    if command not in ("train", "hpo", "evaluate", "doctor"):
        return [command, *given]
    base = {
        "model": "tiny",
        "model.max_length": "64",
        "training.num_epochs": "1",
        "data.posts_path": str(posts),
        "data.annotations_path": str(ann),
        "mlflow.tracking_uri": uri,
        "mlflow.journal_dir": str(journal),
        "training.save_dir": str(tmp / "ckpt"),
        "progress": "false",
    }
    if command == "doctor":
        base = {"mlflow.tracking_uri": uri}
    keys = {a.lstrip("+").partition("=")[0] for a in given}
    return [command, *(f"{k}={v}" for k, v in base.items() if k not in keys), *given]


def _assert_nothing_written(uri: str, journal: Path, tmp: Path) -> None:
    db = Path(uri.removeprefix("sqlite:///"))
    if db.exists():
        client = MlflowClient(uri)
        experiments = client.search_experiments()
        runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
        assert runs == [], [r.info.run_name for r in runs]
    assert not list(journal.glob("*")) if journal.exists() else True
    assert not (tmp / "ckpt").exists()


@pytest.mark.parametrize(("case", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: str,
    args: list[str],
    message: str,
    store: tuple[str, Path],
    small_data: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    uri, journal = store
    monkeypatch.chdir(tmp_path)
    posts, ann = _write_bad_files(case, tmp_path, small_data)
    argv = _arguments(args, posts, ann, uri, tmp_path, journal)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and message.format(tmp=tmp_path) in lines[0], lines[0]
    assert "Traceback" not in err and "secret" not in err
    _assert_nothing_written(uri, journal, tmp_path)


def test_matrix_is_at_least_twenty_cases_of_each_kind_of_input() -> None:
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)
    assert set(BAD_FILES) <= {c[0] for c in CASES}


def test_bad_input_in_a_real_process_prints_only_the_error_line(
    small_data: tuple[Path, Path], tmp_path: Path
) -> None:
    """Outside pytest's capture too: no library warning or progress bar joins the line."""
    posts, ann = small_data
    result = subprocess.run(
        [sys.executable, "-m", "psy_agents_noaug.cli", "train", "model=tiny",
         "model.encoder_name=org/no-such-encoder", f"data.posts_path={posts}",
         f"data.annotations_path={ann}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot load encoder"), result.stderr
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize("args", [["model.max_length=8"], ["model.framing=pair",
                                                         "model.max_length=20"]])  # fmt: skip
def test_max_length_too_short_for_a_window_is_one_line(
    args: list[str], small_data: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    posts, ann = small_data
    argv = ["train", "model=tiny", "training.num_epochs=1", f"data.posts_path={posts}",
            f"data.annotations_path={ann}", "mlflow.enabled=false", "progress=false",
            f"training.save_dir={tmp_path / 'ckpt'}", *args]  # fmt: skip
    try:
        code = main(argv)
    except ValueError as exc:  # what the CLI lets through today: a traceback
        pytest.fail(f"a traceback instead of one line: {exc!r}")
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "max_length" in lines[0]


# ------------------------------------------------------------------ odd posts
LONG_POST_CHARS = 100_000
#: Windows a post may have before it is cut. At model.max_length=64 the sample's longest
#: post needs 11 windows, so only the 100,000-character post (about 300) hits this cap.
WINDOW_CAP = 16
ODD_POSTS = {
    "empty_text": "",
    "whitespace_only": "   \t  \n   ",
    "emoji_only": "😭😭 🙃 💔💔💔 🫠",
}


def _long_text() -> str:
    unit = "I have not slept properly in weeks and everything feels heavy and slow. "
    return (unit * (LONG_POST_CHARS // len(unit) + 1))[:LONG_POST_CHARS]


def _odd_data(
    good: tuple[Path, Path], folder: Path, odd: dict[str, str], *, long_post: bool
) -> tuple[Path, Path, str | None]:
    """The small data plus odd posts (``post_id -> text``); with ``long_post``, one
    training-split post's text becomes 100,000 characters. Returns the files and that id."""
    posts = pd.read_csv(good[0], dtype=str, keep_default_na=False)
    ann = pd.read_csv(good[1], dtype=str, keep_default_na=False)
    if odd:
        extra = pd.DataFrame({"post_id": list(odd), "text": list(odd.values())})
        posts = pd.concat([posts, extra], ignore_index=True)
    long_id = None
    if long_post:
        kept = posts[posts["text"].str.strip() != ""]  # what the reader keeps decides the split
        long_id = split_by_post(kept, seed=42).train["post_id"].iloc[0]
        posts.loc[posts["post_id"] == long_id, "text"] = _long_text()
        ann = ann[ann["post_id"] != long_id]  # its evidence sentences are gone with its text
    posts.to_csv(folder / "posts.csv", index=False)
    ann.to_csv(folder / "annotations.csv", index=False)
    return folder / "posts.csv", folder / "annotations.csv", long_id


def _cut_warning(split: str, count: int, cap: int) -> re.Pattern[str]:
    return re.compile(
        rf"{split} split: {count} post\(s\) are longer than data\.max_windows_per_post={cap} "
        r"windows and were cut; \d+\.\d\d% of the split's tokens are not read \(raise the cap "
        r"to read them\)"
    )


def _unreadable_warning(split: str) -> str:
    return (
        f"{split} split: 1 post(s) have no word the tokenizer knows (only emoji, symbols or "
        "characters it drops); the model reads them as unknown tokens"
    )


def _split_of(posts: Path, post_id: str) -> str:
    """Which split (train, val, test) the reader and the seed-42 splitter put a post in."""
    frame = pd.read_csv(posts, dtype=str, keep_default_na=False)
    splits = split_by_post(frame[frame["text"].str.strip() != ""], seed=42)
    (name,) = [n for n in ("train", "val", "test") if post_id in set(getattr(splits, n).post_id)]
    return name


@pytest.mark.parametrize("case", ["long_post", *ODD_POSTS])
def test_an_odd_post_is_a_counted_warning_never_a_traceback(
    case: str,
    small_data: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys,
) -> None:
    monkeypatch.chdir(tmp_path)
    odd = {} if case == "long_post" else {f"odd_{case}": ODD_POSTS[case]}
    posts, ann, long_id = _odd_data(small_data, tmp_path, odd, long_post=case == "long_post")
    assert len(posts.read_text(encoding="utf-8")) > (LONG_POST_CHARS if long_id else 0)
    argv = ["train", "model=tiny", "model.max_length=64", "training.num_epochs=1",
            f"data.max_windows_per_post={WINDOW_CAP}", f"data.posts_path={posts}",
            f"data.annotations_path={ann}", "mlflow.enabled=false", "progress=false",
            f"training.save_dir={tmp_path / 'ckpt'}"]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "error:" not in err
    assert "best val macro F1" in out  # it trained
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if case == "long_post":
        (warning,) = warnings
        assert _cut_warning("train", 1, WINDOW_CAP).fullmatch(warning), warning
    elif case == "emoji_only":  # read (as unknown tokens), and counted where it is used
        split = _split_of(posts, f"odd_{case}")
        expected = [] if split == "test" else [_unreadable_warning(split)]
        assert warnings == expected
    else:  # empty or whitespace-only: left out, and counted
        (warning,) = warnings
        assert warning.startswith(f"skipped 1 row(s) of {posts}, the rest is used")
        assert f"(post_id='odd_{case}'): empty text" in warning
    assert (tmp_path / "ckpt" / "best_checkpoint.pt").is_file()


@pytest.mark.slow
def test_odd_posts_together_in_a_real_process_print_only_their_warnings(
    small_data: tuple[Path, Path], tmp_path: Path
) -> None:
    """All four in one file, the default window cap, tracked: stderr holds one warning per
    kind of problem (the two blank posts counted together) and nothing else."""
    odd = {f"odd_{case}": text for case, text in ODD_POSTS.items()}
    posts, ann, long_id = _odd_data(small_data, tmp_path, odd, long_post=True)
    uri = f"sqlite:///{tmp_path}/m.db"
    result = subprocess.run(
        [sys.executable, "-m", "psy_agents_noaug.cli", "train", "model=tiny",
         "model.max_length=64", "training.num_epochs=1", "training.logging_steps=1",
         "training.system_metrics_interval=1", f"data.posts_path={posts}",
         f"data.annotations_path={ann}", f"mlflow.tracking_uri={uri}", "progress=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PSY_AGENTS_JOURNAL_DIR": str(tmp_path / "journal")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    emoji_split = _split_of(posts, "odd_emoji_only")
    assert len(lines) == (2 if emoji_split == "test" else 3), result.stderr
    skipped = "WARNING psy_agents_noaug.data.redsm5: "
    recipe = "WARNING psy_agents_noaug.training.recipe: "
    assert lines[0].startswith(f"{skipped}skipped 2 row(s) of {posts}, the rest is used")
    assert lines[0].count("empty text") == 2
    assert all(line.startswith(recipe) for line in lines[1:]), lines
    assert _cut_warning("train", 1, 128).fullmatch(lines[1].removeprefix(recipe)), lines[1]
    if emoji_split != "test":
        assert lines[-1].removeprefix(recipe) == _unreadable_warning(emoji_split)

    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED"
    params = run.data.params
    # 40 posts + the emoji-only one are read (the two blank ones are not): 29 / 6 / 6.
    assert (params["data/train/posts"], params["data/val/posts"]) == ("29", "6")
    assert params["data/train/posts_cut"] == "1" and params["data/val/posts_cut"] == "0"
    assert params["data/train/windows_max"] == "128"
    assert float(params["data/train/tokens_seen_fraction"]) < 1.0
    assert int(params["data/train/tokens_max"]) > 10_000  # the long post, tokenized whole
    assert long_id is not None
