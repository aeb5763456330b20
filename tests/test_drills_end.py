"""Failure drills at the end of ``train``, where a run's points, model and status are
written: the tracking server dies after epoch 1 and stays down (the process must exit within
30 s of its last step, and ``sync`` completes the run), and Ctrl-C lands at ten moments
across the end (never half a model, never a traceback).

Processes are real (see ``tests/warm_cli.py``); every wait polls the store with a deadline.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from psy_agents_noaug.cli import main
from tests.drills import (
    EXPERIMENT,
    Cli,
    assert_complete_history,
    assert_whole_model,
    history_timestamps,
    leftover_journals,
    models_of,
    runs_named,
    train_args,
    wait_for,
)
from tests.mlflow_server import MlflowServer


@pytest.mark.slow
def test_server_dead_for_good_train_exits_in_seconds_and_sync_completes_the_run(
    small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    """The server dies after epoch 1 and stays down: the process finishes training, journals,
    says where and how to sync, and exits 3 within 30 s of its last step; sync completes it."""
    srv = MlflowServer(f"sqlite:///{tmp_path}/server.db", tmp_path).start()
    try:
        cli = Cli(train_args(small_data, srv.url, "training.num_epochs=3",
                              "mlflow.run_name=dies_for_good"), tmp_path, "train")  # fmt: skip
        clis.append(cli)
        client = MlflowClient(srv.url)

        def first_epoch_in() -> Any:
            runs = runs_named(client, EXPERIMENT, **{"mlflow.runName": "dies_for_good"})
            if runs and client.get_metric_history(runs[0].info.run_id, "epoch/val_f1_macro"):
                return runs[0]
            return None

        run = wait_for("epoch 1 in the store", first_epoch_in, 240, (cli,))
        srv.kill()
        code = cli.proc.wait(240)
        exited_at = time.time()
        out = cli.text()
        assert code == 3, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        journal = leftover_journals(tmp_path)
        assert [j.name for j in journal] == [f"{run.info.run_id}.journal.jsonl"]
        assert f"psy-agents sync {journal[0]}" in out

        srv.start()
        assert main(["sync", str(journal[0])]) == 0
        run = client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert_complete_history(client, run)
        last_step = max(history_timestamps(client, run.info.run_id, "train/loss_step"))
        after = exited_at - last_step
        assert after < 30, f"exited {after:.1f} s after its last step"
        top = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "checkpoints"} <= top
        assert_whole_model(client, run)
    finally:
        srv.stop()


def _end_phase_started(save_dir: Path) -> bool:
    """The last epoch's checkpoint is on disk: the training process wrote it itself (the
    store may see the epoch's points much later when the machine is busy)."""
    return (save_dir / "best_checkpoint.pt").exists()


def _summary_printed(cli: Cli) -> bool:
    return cli.log.exists() and "open              :" in cli.text()


#: Seconds after the checkpoint at which moment m's Ctrl-C lands (moment 9: once the summary
#: is printed, during the exit): early moments hit the uploads, later ones the run's end.
MOMENT_STEP_S = 0.5


@pytest.mark.slow
def test_sigint_at_ten_moments_across_the_end_of_train_never_leaves_half_a_model(
    small_data, tmp_path: Path, clis: list[Cli]
) -> None:
    """Ten trainings, five at a time; each gets Ctrl-C at its own moment after its last
    epoch: checkpoint upload, model, the run's end, the summary, the exit."""
    import mlflow
    from mlflow.entities import LoggedModelStatus

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    client.search_experiments()  # the schema once, before ten processes race for nothing
    outcomes = []
    for batch in (range(0, 5), range(5, 10)):
        started = {}
        for moment in batch:
            name = f"interrupted_{moment}"
            args = train_args(small_data, uri, "training.num_epochs=1", f"mlflow.run_name={name}",
                              f"training.save_dir={tmp_path / name}")  # fmt: skip
            started[moment] = Cli(args, tmp_path, name)
        clis.extend(started.values())
        due: dict[int, float] = {}
        reached: set[int] = set()
        deadline = time.monotonic() + 300
        while len(reached) < len(started) or any(
            started[m].proc.poll() is None and m not in due for m in started
        ):
            assert time.monotonic() < deadline, "the trainings did not reach their end"
            for moment, cli in started.items():
                if moment in reached:
                    continue
                if (moment == 9 and _summary_printed(cli)) or (
                    moment < 9 and _end_phase_started(tmp_path / f"interrupted_{moment}")
                ):
                    reached.add(moment)
                    due[moment] = time.monotonic() + (MOMENT_STEP_S * moment if moment < 9 else 0)
                elif cli.proc.poll() is not None:
                    pytest.fail(f"{cli.log.name} exited early:\n{cli.text()[-3000:]}")
            for moment, at in list(due.items()):
                if time.monotonic() >= at:
                    if started[moment].proc.poll() is None:
                        started[moment].proc.send_signal(signal.SIGINT)
                    del due[moment]
            threading.Event().wait(0.05)
        for moment, cli in started.items():
            code = cli.proc.wait(120)
            out = cli.text()
            # 130: interrupted, the run ended KILLED. -SIGINT: the signal came while Python was
            # already finalizing after the run had ended (a shell shows both as 130).
            assert code in (0, 130, -signal.SIGINT), out[-3000:]
            assert "Traceback" not in out, out[-3000:]
            (finished,) = runs_named(
                client, EXPERIMENT, **{"mlflow.runName": f"interrupted_{moment}"}
            )
            assert finished.info.status == ("KILLED" if code == 130 else "FINISHED"), out[-2000:]
            assert_complete_history(client, finished)
            top = {f.path for f in client.list_artifacts(finished.info.run_id)}
            whole = []
            for model in models_of(client, finished).values():  # a model shown READY is whole
                if isinstance(model, str):
                    whole.append(mlflow.pyfunc.load_model(model))
                elif model.status == LoggedModelStatus.READY:
                    whole.append(mlflow.pyfunc.load_model(model.artifact_location))
                else:  # an interrupted upload is marked so, never left looking whole
                    assert model.status == LoggedModelStatus.FAILED, model
            assert not [p for p in top if "staged" in p]
            outcomes.append((moment, code, bool(whole)))
    codes = {code for _, code, _ in outcomes}
    assert 130 in codes and codes - {130}, outcomes  # the moments did span the end


FINALIZER_INTERRUPT = """
import time, weakref
from psy_agents_noaug.cli import _keep_interrupts_from_finalizers

_keep_interrupts_from_finalizers()


class Figure:
    pass


def boom(_):  # Ctrl-C arriving while a weakref callback runs (matplotlib has such callbacks)
    raise KeyboardInterrupt


figure = Figure()
ref = weakref.ref(figure, boom)
try:
    del figure
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.01)  # a long-running loop the interrupt must still reach
    print("the interrupt was lost")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_inside_a_finalizer_still_interrupts_and_prints_no_traceback() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FINALIZER_INTERRUPT], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "interrupted", out
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr
