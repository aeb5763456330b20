"""The product's core: every point from the training thread to MLflow, and every run's life.

Layers, top to bottom (see ``docs/architecture.md``):

* :mod:`.lifecycle`: the one run lifecycle (start, own with a heartbeat, end points-first)
  and the hook that gives MLflow's own run ends the same order;
* :mod:`.sink`: the training process's side: a queue, a shipper thread, acknowledged
  delivery to a writer process, resend when a writer dies;
* :mod:`.messages`: the typed messages between the two processes;
* :mod:`.writer`: the writer process: batches, bulk SQL (:mod:`.bulk_sql`) or
  ``log_batch``, retries, the journal (:mod:`.journal`) when the store is down, replay
  (:mod:`.sync`), heartbeats;
* :mod:`.store`: checks, bounded waits and one-time schema creation (:mod:`.locks`);
* :mod:`.orphans`: runs whose owner died, ended by `psy-agents doctor`;
* :mod:`.tags`: every tag name.
"""

from psy_agents_noaug.tracking.lifecycle import (
    TrackedRun,
    ensure_experiment,
    install_end_hook,
    setup_experiment,
    status_for,
)
from psy_agents_noaug.tracking.sink import FlushResult, MetricSink, flush_all, get_sink, shutdown
from psy_agents_noaug.tracking.store import (
    ArtifactStoreError,
    TrackingStoreError,
    check_store,
    mask_uri,
    prepare_store,
)

__all__ = [
    "ArtifactStoreError",
    "FlushResult",
    "MetricSink",
    "TrackedRun",
    "TrackingStoreError",
    "check_store",
    "ensure_experiment",
    "flush_all",
    "get_sink",
    "install_end_hook",
    "mask_uri",
    "prepare_store",
    "setup_experiment",
    "shutdown",
    "status_for",
]
