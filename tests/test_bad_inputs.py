"""The bad-input matrix: config values, data files and CLI arguments a user gets wrong.

Each case runs the real CLI entry point and must give exit code 2, exactly one line on
stderr that starts with ``error:`` and names the problem, and leave nothing half-written:
no run in the store, no journal, no checkpoint folder.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main

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
