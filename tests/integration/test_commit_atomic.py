"""at_least_once on the real broker: a restore never sees part of a commit's states.

A worker killed while its changelog writes were being delivered must not leave
some of them behind: a person's new state beside the partition's old read
position would apply the same records twice after the restart (the harness's
1M-record at_least_once crash run found extra segment and eviction records
that way). The changelog of a commit is one transaction of a state-only
producer; the restarted instance fences the dead one and aborts it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.cli.worker import ensure_changelog
from pipeline.config import Settings
from pipeline.worker.clients import changelog_topic
from pipeline.worker.commit import Committer
from pipeline.worker.restore import restore
from pipeline.worker.store import PartitionStore

pytestmark = pytest.mark.integration


def test_a_commit_cut_off_mid_delivery_leaves_no_state_behind(
    settings: Settings, tmp_path: Path
) -> None:
    settings = replace(settings, processing_guarantee="at_least_once")
    ensure_changelog(settings, 1)
    changelog = changelog_topic(settings)

    dead = Committer(settings, None, "w-0", changelog)
    dead.start()
    dead.send(changelog, b"pu1", b"state-1", [], 0)
    dead.send(changelog, b"mclocks", b'{"read_to":1}', [], 0)
    assert dead._commit_transaction(None)  # a whole commit: it is restored
    dead.send(changelog, b"pu1", b"state-2", [], 0)
    dead.send(changelog, b"pu2", b"state-1", [], 0)
    assert dead.states.flush(10) == 0  # on the broker, its clock record not yet sent: kill -9

    restarted = Committer(settings, None, "w-0", changelog)
    restarted.start()  # same instance id: the dead one's open commit is aborted
    store = PartitionStore(tmp_path / "p0", 0)
    restore(settings.bootstrap_servers, changelog, {0: store}, timeout_s=60)
    assert store.get(b"pu1") == b"state-1"
    assert store.get(b"pu2") is None
    assert store.get(b"mclocks") == b'{"read_to":1}'
    restarted.close()
    store.close()
