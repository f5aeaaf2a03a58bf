"""`aec models` and `aec datasets`: the model registry, the zoo, the dataset catalog."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from jobs.catalog import JobCatalog
from jobs.cli.options import (
    DEFAULT_REGISTRY,
    RegistryOption,
)
from jobs.registry import ModelRegistry
from jobs.ui import console, fmt, kv_table, user_errors

app = typer.Typer(no_args_is_help=True, help="The model registry: list, show, promote.")
datasets_app = typer.Typer(no_args_is_help=True, help="The dataset catalog: what compress jobs wrote.")


@app.command("list")
@user_errors
def models_list(registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """Every model and version in the registry, with held-out quality and the production alias.

    Example: aec models list --registry .aec/registry
    """
    reg = ModelRegistry(registry)
    table = Table("model", "version", "aliases", "modality", "architecture", "held-out", "files", "registered",
                  title=f"models in {reg.loc.url}", title_justify="left")
    for name in reg.names():
        aliases = reg.aliases(name)
        for v in reg.versions(name):
            info = reg.resolve(f"{name}@{v}").info
            table.add_row(name, str(v), ", ".join(a for a, x in aliases.items() if x == v) or "-",
                          info.get("modality", "-"), info.get("architecture", "-"),
                          fmt({k: x for k, x in info.get("heldout", {}).items() if k != "files"}),
                          fmt(info.get("lineage", {}).get("files")), info.get("registered_at", "-"))
    console.print(table)


@app.command("zoo")
def models_zoo() -> None:
    """The pretrained models shipped with aec, one per line, name first: use them as
    `model: zoo:NAME` in a compress spec, or `init: zoo:NAME` in a train spec.

    Example: aec models zoo
    """
    from aecore.zoo import ZOO

    for entry in ZOO.values():
        state = "" if entry.available else "  (weights missing from this installation)"
        rate = f"rate point {entry.rate_point:g}" if entry.rate_point is not None else "-"
        default = "  [default starting point]" if entry.default else ""
        console.print(f"zoo:{entry.name}\t{entry.modality}\t{rate}\t{entry.summary}{default}{state}",
                      highlight=False, soft_wrap=True)


@app.command("show")
@user_errors
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@production.")],
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """A model version's spec, training metrics, data lineage, held-out quality and promotion.

    Example: aec models show photos@production
    """
    reg = ModelRegistry(registry)
    mv = reg.resolve(ref)
    info = mv.info
    aliases = [a for a, v in reg.aliases(mv.name).items() if v == mv.version]
    console.print(kv_table(f"{mv.ref}" + (f" ({', '.join(aliases)})" if aliases else ""), {
        "modality": info.get("modality"), "architecture": f"{info.get('architecture')}/{info.get('preset')}",
        "registered": info.get("registered_at"), "training metrics": info.get("metrics", {}),
        "held-out quality": info.get("heldout", {}), "lineage": info.get("lineage", {}),
        "promotion": (info.get("promotion") or {}).get("reason"), "job": info.get("job_id"),
        "train seconds": info.get("train_seconds"),
    }))
    console.print_json(json.dumps(info.get("spec", {})))


@app.command("promote")
@user_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    alias: Annotated[str, typer.Option(help="The alias to point at it.")] = "production",
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """Point an alias (production) at a version, by hand (no quality gate).

    Example: aec models promote photos 3
    """
    reg = ModelRegistry(registry)
    before = reg.aliases(name).get(alias)
    reg.promote(name, version, alias)
    console.print(f"{name}@{alias}: v{before} -> v{version}" if before else f"{name}@{alias} -> v{version}", highlight=False)


@datasets_app.command("list")
@user_errors
def datasets_list(registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """Datasets compress jobs wrote, with their model, rows and ratio.

    Example: aec datasets list
    """
    catalog = JobCatalog(registry)
    table = Table("output", "modality", "model", "rows", "errors", "ratio", "last job", "updated",
                  title=f"datasets in {catalog.loc.url}", title_justify="left")
    for d in catalog.datasets():
        table.add_row(d["output"], d.get("modality", "-"), d.get("model", "-"), fmt(d.get("rows")), fmt(d.get("errors")),
                      fmt(d.get("ratio")), d.get("last_job", "-"), d.get("updated_at", "-"))
    console.print(table)


@datasets_app.command("optimize")
@user_errors
def datasets_optimize(
    dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")],
    target_mb: Annotated[int, typer.Option(help="Size of the compacted parts.")] = 256,
) -> None:
    """Compact a dataset's small parts into large ones (rows unchanged; safe beside a running job).

    Example: aec datasets optimize s3://bucket/latents
    """
    from cluster.maintain import optimize
    from cluster.storage import Location

    console.print(kv_table(f"optimized {dataset}", optimize(Location.of(dataset), target_mb)))


@datasets_app.command("vacuum")
@user_errors
def datasets_vacuum(
    dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")],
    retention_hours: Annotated[int, typer.Option(help="Keep what versions of the last this-many hours need "
                                                      "(at least 168).")] = 168,
    dry_run: Annotated[bool, typer.Option("--dry-run/--delete", help="List (default) or delete.")] = True,
) -> None:
    """Delete files no recent version needs: parts replaced by optimize or --overwrite, and parts
    killed jobs wrote but never committed. Versions older than the retention become unreadable.

    Example: aec datasets vacuum s3://bucket/latents --delete
    """
    from cluster.maintain import vacuum
    from cluster.storage import Location

    files = vacuum(Location.of(dataset), retention_hours, dry_run)
    for f in files:
        console.print(f, highlight=False)
    console.print(f"{len(files)} files {'would be ' if dry_run else ''}deleted", highlight=False)
