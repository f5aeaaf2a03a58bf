"""What every `aec` command shares: consoles, one-line user errors, key/value tables."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aecore.errors import UserError

__all__ = ["console", "err_console", "error_line", "fmt", "kv_table", "user_errors"]

# Piped or captured output (job logs, CI) gets room for ids and URLs instead of 80 columns.
# No markup: file names, uris and reasons print literally (``[red]x.png`` is a name, not a colour);
# styling goes through ``error_line`` and Text styles.
console = Console(width=None if sys.stdout.isatty() else 140, markup=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140, markup=False)


def error_line(message: str) -> Text:
    """``error: MESSAGE`` with the prefix in bold red and the message as it is."""
    return Text.assemble(("error:", "bold red"), " ", message)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """A :class:`~aecore.errors.UserError` ends the command with its one line and exit code 2;
    anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(error_line(str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows.items():
        table.add_row(k, fmt(v))
    return table


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items()) or "-"
    return str(v)
