"""The `doctor` job: list, then end, RUNNING runs whose process died (see tracking.orphans)."""

from __future__ import annotations

from collections.abc import Sequence

from psy_agents_noaug.tracking.orphans import find_orphans, repair_orphans
from psy_agents_noaug.tracking.store import check_store, mask_uri

__all__ = ["run_doctor"]


def run_doctor(
    tracking_uri: str,
    experiment_names: Sequence[str] | None,
    *,
    stale_after_s: float,
    dry_run: bool,
) -> int:
    """Print the orphaned runs of the store and, unless ``dry_run``, end them FAILED."""
    check_store(tracking_uri)
    orphans = find_orphans(tracking_uri, experiment_names, stale_after_s=stale_after_s)
    for orphan in orphans:
        print(orphan)
    where = mask_uri(tracking_uri)
    if dry_run or not orphans:
        note = " (dry run: nothing changed)" if orphans else ""
        print(f"{len(orphans)} orphaned run(s) in {where}{note}")
        return 0
    ended = repair_orphans(tracking_uri, experiment_names, stale_after_s=stale_after_s)
    print(f"{len(ended)} orphaned run(s) marked FAILED in {where}")
    return 0
