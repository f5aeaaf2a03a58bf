"""`aec query` and `--where` read the dataset and nothing else (issue 27, item 7)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cluster.sql import SqlError, connect, read_only_statement


def test_sql_reaches_the_rows_it_was_given_and_nothing_else(tmp_path):
    con = connect({"latents": pa.table({"id": ["a", "b"], "key": ["x.png", "y.txt"]})})
    assert con.table("latents").filter("key LIKE '%.png'").select("id").fetchall() == [("a",)]
    target, other = tmp_path / "pwned", tmp_path / "other.db"
    for sql in ["SELECT * FROM read_csv('/etc/passwd')", f"COPY (SELECT 'x') TO '{target}'", "INSTALL httpfs",
                "SET enable_external_access = true", f"ATTACH '{other}' AS other"]:
        with pytest.raises(Exception):  # noqa: B017 - DuckDB's permission, parser or configuration error
            con.sql(sql).fetchall()
    with pytest.raises(Exception):  # noqa: B017
        con.table("latents").filter(f"1=1; COPY (SELECT 1) TO '{target}'").fetchall()
    assert not target.exists() and not other.exists()


def test_aec_query_takes_one_select():
    assert read_only_statement("SELECT count(*) FROM latents") == "SELECT count(*) FROM latents"
    for sql in ["SELECT 1; COPY (SELECT 'pwned') TO '/tmp/x'", "DELETE FROM latents", "CREATE TABLE t AS SELECT 1"]:
        with pytest.raises(SqlError, match="one SELECT"):
            read_only_statement(sql)
