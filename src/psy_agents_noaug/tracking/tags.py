"""Every MLflow tag name psy-agents writes or reads, spelled once.

MLflow's own tags (``mlflow.*``) are listed here too where we set them, so a reader can
see in one place what a psy-agents run carries and why.
"""

from __future__ import annotations

import time

# --- MLflow's own tags -------------------------------------------------------------------
#: The run's (or experiment's) description, shown as "Description" in the MLflow UI.
DESCRIPTION = "mlflow.note.content"
#: Nests a run under its parent in the runs table.
PARENT_RUN_ID = "mlflow.parentRunId"
RUN_NAME = "mlflow.runName"
#: On a logged model: the registry versions made from it (MLflow's UI lists them).
MODEL_VERSIONS = "mlflow.modelVersions"
#: How MLflow 3's UI decides an experiment's landing view (runs table vs. GenAI overview).
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"

# --- liveness and ends: the run lifecycle ------------------------------------------------
#: ISO-8601 UTC time of the owner's last sign of life; renewed by the metric writer.
HEARTBEAT = "psy_agents.heartbeat"
#: How often the writer renews it; `doctor` calls a run dead after ten missed beats.
HEARTBEAT_INTERVAL_S = 30.0
#: Why a run ended other than FINISHED (an error's first line, "training process died", …).
END_REASON = "psy_agents.end_reason"
#: When `psy-agents doctor` (or sync) ended a run whose owner was gone.
REPAIRED_AT = "psy_agents.repaired_at"

#: On an HPO trial run whose checkpoint was deleted to save disk: why.
CHECKPOINT = "psy_agents.checkpoint"

# --- what a run is ------------------------------------------------------------------------
#: On a run started with ``resume_from=``: the run id or checkpoint path it continues.
RESUMED_FROM = "psy_agents.resumed_from"
TASK = "task"
ENCODER = "encoder"
WORLD_SIZE = "world_size"

# --- HPO: the parent run and its trials ---------------------------------------------------
HPO_STUDY_NAME = "hpo.study_name"
HPO_DIRECTION = "hpo.direction"
HPO_METRIC = "hpo.metric"
HPO_N_TRIALS = "hpo.n_trials"
HPO_SAMPLER = "hpo.sampler"
HPO_PRUNER = "hpo.pruner"
HPO_STORAGE = "hpo.storage"
HPO_STATUS = "hpo.status"
HPO_BEST_PARAMS = "hpo.best_params"
HPO_BEST_PREFIX = "hpo.best/"
HPO_SOURCE_STUDY = "hpo.source_study"
HPO_TRIAL_NUMBER = "hpo.trial_number"
HPO_STATE = "hpo.state"
HPO_ERROR = "hpo.error"
HPO_RETRY_OF = "hpo.retry_of"
HPO_PRUNED_AT_EPOCH = "hpo.pruned_at_epoch"


def heartbeat_value(now: float | None = None) -> str:
    """The heartbeat tag's value: readable UTC time (``2026-12-01T09:41:21Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
