"""The promotion gate of a retraining job: a new version replaces ``production`` only if its
held-out quality is at least production's, within a stated tolerance — and at least the best
former production's within the same tolerance, so quality cannot ratchet down by a tolerance
each version (v2 a hair below v1, v3 a hair below v2, ...).

Both versions are measured on the same held-out files (the tenth of the collection the new
version never trained on), so a change in the data does not pass for a change in the model.
The metric is the modality's ``gate_metric`` (image PSNR, audio SNR: higher is better; text
bits per byte: lower is better).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aecore import get_modality, read_bundle

__all__ = ["GateDecision", "decide"]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    candidate: float | None = None
    production: float | None = None
    production_version: int | None = None  # the version the candidate was held to (production, or a better former one)
    tolerance: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    policy: str,
    modality: str,
    candidate: dict[str, Any],
    production: tuple[int, bytes] | None,
    tolerance: float,
    measure: Callable[[bytes], dict[str, Any]],
    best_former: tuple[int, bytes] | None = None,
) -> GateDecision:
    """``candidate``: the new version's held-out quality; ``production``: (version, bundle) or
    None; ``measure(bundle)``: held-out quality of a bundle on the candidate's held-out files;
    ``best_former``: the best version that was production before (version, bundle), measured on
    the same files — the candidate is held to whichever of the two measures better."""
    metric, direction = get_modality(modality).gate_metric
    new = candidate.get(metric)
    if policy == "never":
        return GateDecision(False, "promote: never (spec); production unchanged", metric, new, tolerance=tolerance)
    if production is None:
        return GateDecision(True, "no production version yet: the first version becomes production", metric, new,
                            tolerance=tolerance)
    version, bundle = production
    if policy == "always":
        return GateDecision(True, f"promote: always (spec); replaces production v{version}", metric, new,
                            production_version=version, tolerance=tolerance)
    if read_bundle(bundle)["modality"] != modality:
        return GateDecision(True, f"production v{version} is a model of another modality; replaced", metric, new,
                            production_version=version, tolerance=tolerance)
    old = measure(bundle).get(metric)
    if best_former is not None and best_former[0] != version and old is not None:
        former = measure(best_former[1]).get(metric)
        if former is not None and direction * (former - old) > 0:
            version, old = best_former[0], former  # the bar is the best production so far, not the last
    if new is None or old is None:
        return GateDecision(False, f"held-out {metric} could not be measured (no readable held-out files); "
                            "production unchanged", metric, new, old, version, tolerance)
    # direction +1: new >= old - tol; direction -1: new <= old + tol
    passed = direction * (new - old) >= -tolerance
    better = "higher" if direction > 0 else "lower"
    who = f"production v{version}" if version == production[0] else f"the best former production v{version}"
    cmp = f"held-out {metric} {new:.3f} vs {who} {old:.3f} ({better} is better, tolerance {tolerance:g})"
    if passed:
        return GateDecision(True, f"promoted: {cmp}", metric, new, old, version, tolerance)
    return GateDecision(False, f"not promoted, production stays v{production[0]}: {cmp}", metric, new, old, version,
                        tolerance)
