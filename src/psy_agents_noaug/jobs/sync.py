"""The `sync` job: upload a metric journal left behind while the store was unreachable."""

from __future__ import annotations

from pathlib import Path

from psy_agents_noaug.utils import journal as jr
from psy_agents_noaug.utils.tracking import TrackingStoreError, mask_uri


def sync_journal(path: str | Path, tracking_uri: str | None = None) -> str:
    """Upload every point (and the final run status) of a journal exactly once.

    Safe to run twice: progress is recorded after each batch, a finished journal is
    renamed ``*.synced``, and SQL stores ignore points that are already present.

    Returns:
        A one-line report of what was uploaded where.
    """
    from mlflow.tracking import MlflowClient

    path = Path(path)
    done = path.with_name(path.name + jr.SYNCED_SUFFIX)
    if not path.exists() and done.exists():
        return f"{path} was already synced (see {done})"
    journal = jr.Journal.read(path)
    uri = tracking_uri or journal.tracking_uri
    client = MlflowClient(uri)
    try:
        client.get_run(journal.run_id)
    except Exception as exc:
        raise TrackingStoreError(
            f"run {journal.run_id} is not reachable at {mask_uri(uri)} ({exc})"
        ) from None
    sent = jr.replay(journal, client)
    jr.finish(journal)
    return f"uploaded {sent} points to run {journal.run_id} at {mask_uri(uri)}"
