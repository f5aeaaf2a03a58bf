"""SQL over a dataset, sandboxed: DuckDB with no file system, no network, no extensions, its
configuration locked, and only what aec registers in it (the dataset's rows, its errors).

``--where`` takes one expression (a relation's filter, never a statement); ``aec query`` one
read-only statement (a SELECT). What a user types can read the rows it was given and nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SqlError", "connect", "read_only_statement"]

from aecore.errors import UserError


class SqlError(UserError, ValueError):
    """SQL that is not one read-only statement (one line)."""


_LOCKED = {"enable_external_access": False, "autoinstall_known_extensions": False,
           "autoload_known_extensions": False, "allow_community_extensions": False}


def connect(tables: dict[str, Any]) -> Any:
    """A DuckDB connection that sees ``tables`` (name -> Arrow table or dataset) and nothing else."""
    import duckdb

    con = duckdb.connect(config=dict(_LOCKED))
    for name, table in tables.items():
        con.register(name, table)
    con.execute("SET lock_configuration = true")
    return con


def read_only_statement(sql: str) -> str:
    """``sql`` if it is exactly one SELECT; else a one-line :class:`SqlError`."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(f"query failed: {str(exc).splitlines()[0]}; fix the SQL") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise SqlError(f"aec query runs one SELECT statement, not {kinds}; the archive is read-only here")
    return sql
