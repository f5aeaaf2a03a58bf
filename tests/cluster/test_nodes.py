"""A real Ray cluster of a head and one-CPU worker nodes on loopback loses a node in the middle of
a compress, a restore and a training run, and gains one in the middle of a compress
(tests/cluster/nodes.py runs them, in one subprocess: this session's own Ray is a one-node instance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("compress_loses_a_node", "restore_loses_a_node", "a_node_joins", "train_loses_a_node")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("nodes")
    proc = subprocess.run([sys.executable, "-m", "tests.cluster.nodes", str(out), *SCENARIOS], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    found = {name: json.loads((out / f"{name}.json").read_text()) for name in SCENARIOS
             if (out / f"{name}.json").exists()}
    assert found, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name, facts in found.items():
        print(name, facts)
    return found


def _facts(outcomes: dict, name: str) -> dict:
    facts = outcomes.get(name)
    assert facts is not None, f"{name} did not run"
    assert "crashed" not in facts, facts["crashed"]
    return facts


def test_a_compress_job_that_loses_a_node_holds_every_input_exactly_once(outcomes):
    facts = _facts(outcomes, "compress_loses_a_node")
    assert facts["lost_node_held_encoders"] and facts["staged_before_loss"] >= 4  # parts staged, none committed
    assert facts["first_run_error"] is None or "rerun_skipped" in facts, facts
    # DuckDB over the committed table: every input once, no error rows; staged parts no commit
    # names stay invisible to every reader
    assert facts["rows"] == facts["distinct_uris"] == facts["inputs"], facts
    assert facts["error_files"] == 0


def test_a_restore_that_loses_a_node_writes_every_file_once_and_whole(outcomes):
    facts = _facts(outcomes, "restore_loses_a_node")
    assert facts["lost"] and facts["error"] is None, facts
    assert facts["rows"] == facts["table_rows"] == facts["files"] and facts["failed"] == 0, facts
    assert facts["compared"] == facts["rows"] and facts["psnr"] > 20, facts  # against the originals
    assert facts["unreadable"] == 0 and facts["temporary"] == 0


def test_a_node_that_joins_mid_job_takes_work_and_prometheus_scrapes_both_nodes(outcomes):
    facts = _facts(outcomes, "a_node_joins")
    assert facts["error"] is None and facts["staged_before_join"], facts
    # the encoder that had no room waited, then started on the node that joined and encoded there
    assert facts["joined_node_encoded"] and len(facts["encoder_nodes"]) == 2, facts
    assert facts["metrics_targets"] == 3  # head and both workers, from the discovery file
    per_node = facts["encoded_per_node"]
    assert len(per_node) == 2 and all(v > 0 for v in per_node.values()), facts
    assert sum(per_node.values()) == facts["inputs"], facts  # every input counted once, on one node
    assert facts["rows"] == facts["distinct_uris"] == facts["inputs"] and facts["error_files"] == 0, facts


def test_training_that_loses_a_node_resumes_from_its_last_checkpoint(outcomes):
    facts = _facts(outcomes, "train_loses_a_node")
    assert facts["checkpoint_before_loss"] and facts["lost"] and facts["error"] is None, facts
    assert facts["resumed_from_epoch"] >= 1, facts  # not from scratch
    assert facts["registered_is_last_checkpoint"], facts
