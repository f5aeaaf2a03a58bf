"""Which learned models join an archive: at effort max every modality's zoo model, at default the
text one (its primed coder is fast) — the default entries for a new table, the ones the table
records where a run appends to it (a newer installation's default would not match its rows, and
the append would be refused)."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from aecore.zoo import default_entry
from cluster.table import table_properties
from jobs.registry import ModelRegistry
from jobs.run import archive_models
from jobs.spec import parse_spec


def _refs(job, registry, overwrite=False) -> dict[str, str]:
    return {m.modality: f"{m.name}@{m.version}" for m in archive_models(job, registry, overwrite)}


def test_an_append_keeps_the_zoo_models_its_table_records(tmp_path):
    registry = ModelRegistry(str(tmp_path / "reg"))
    job = parse_spec({"kind": "compress", "name": "a", "input": str(tmp_path), "output": str(tmp_path / "out"),
                      "effort": "max"})
    fresh = _refs(job, registry)
    assert fresh["text"] == f"zoo:{default_entry('text').name}@1" == "zoo:text-cm@1"
    recorded = {"text": {"ref": "zoo:text-fast@1", "bundle_sha256": "x"}, "image": {"ref": "zoo:image-small@1"}}
    write_deltalake(str(tmp_path / "out"), pa.table({"id": ["x"]}))  # as aec writes them: properties a second commit
    DeltaTable(str(tmp_path / "out")).alter.set_table_properties(table_properties({"models": recorded}),
                                                                 raise_if_not_exists=False)
    # the table's, not today's default; and no model the table lacks (it has no audio model)
    assert _refs(job, registry) == {"image": "zoo:image-small@1", "text": "zoo:text-fast@1"}
    assert _refs(job, registry, overwrite=True) == fresh  # an overwrite starts the table anew


def test_the_text_model_joins_a_new_default_archive_and_an_older_table_keeps_its_models(tmp_path):
    registry = ModelRegistry(str(tmp_path / "reg"))
    job = parse_spec({"kind": "compress", "name": "a", "input": str(tmp_path), "output": str(tmp_path / "out")})
    assert _refs(job, registry) == {"text": "zoo:text-cm@1"}
    assert _refs(parse_spec({**job.model_dump(), "effort": "fast"}), registry) == {}
    write_deltalake(str(tmp_path / "out"), pa.table({"id": ["x"]}))  # a table written before text-cm joined
    DeltaTable(str(tmp_path / "out")).alter.set_table_properties(table_properties({"models": {}}),
                                                                 raise_if_not_exists=False)
    assert _refs(job, registry) == {}  # an append adds no model its table lacks
