"""The `sync` job: upload a journal left behind while the tracking store was unreachable.

The upload itself is :func:`psy_agents_noaug.tracking.sync.sync_journal`; this job prints
its report and turns it into the command's exit code (1 only when part of the journal was
unreadable and no copy of it followed).
"""

from __future__ import annotations

from pathlib import Path

from psy_agents_noaug.tracking.sync import sync_journal

__all__ = ["run_sync"]


def run_sync(path: str | Path, tracking_uri: str | None = None) -> int:
    """Upload every readable record of the journal at ``path``; print what happened."""
    report = sync_journal(path, tracking_uri=tracking_uri)
    print(report)
    return report.exit_code
