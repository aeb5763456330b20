"""Keep the checkpoints of a study's best trials only: a 50-trial study does not store 50.

Every trial's run logs its best checkpoint (``checkpoints/best_checkpoint.pt``, about
90 MB for MiniLM). After each trial, the trials outside the best ``keep`` completed ones
(and every pruned or failed one) lose it: the artifact is deleted through the run's
artifact repository and the run is tagged with why. Any worker may do this for any
trial; it is idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from psy_agents_noaug.tracking import tags
from psy_agents_noaug.training.checkpoints import CHECKPOINT_DIR

__all__ = ["CheckpointRetention"]

_log = logging.getLogger(__name__)
_RUN_ATTR = "mlflow_run_id"


class CheckpointRetention:
    """An OptunaRunner callback: delete the checkpoints of trials outside the best ``keep``.

    Args:
        keep: How many of the best completed trials keep their checkpoint.
        tracking_uri: The store of the trial runs.
    """

    def __init__(self, keep: int, tracking_uri: str) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        self.keep = keep
        self.client = MlflowClient(tracking_uri)
        self._dropped: set[str] = set()

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        complete.sort(key=lambda t: (-t.value if maximize else t.value, t.number))  # type: ignore[operator]
        kept = {t.number for t in complete[: self.keep]}
        for other in trials:
            run_id = other.user_attrs.get(_RUN_ATTR)
            finished = other.state.is_finished()
            if run_id and finished and other.number not in kept and run_id not in self._dropped:
                self._drop(run_id, other)

    def _drop(self, run_id: str, trial: FrozenTrial) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            if not self.client.list_artifacts(run_id, CHECKPOINT_DIR):
                self._dropped.add(run_id)
                return
            uri = self.client.get_run(run_id).info.artifact_uri
            get_artifact_repository(uri).delete_artifacts(CHECKPOINT_DIR)
            why = (
                f"not among the best {self.keep} trials"
                if trial.state == TrialState.COMPLETE
                else (f"trial {trial.state.name.lower()}")
            )
            self.client.set_tag(run_id, tags.CHECKPOINT, f"deleted: {why}")
            self._dropped.add(run_id)
        except Exception as exc:  # disk bookkeeping must never stop a study
            _log.warning("could not delete the checkpoint of trial %d: %s", trial.number, exc)
