"""The Dagster beta features this project uses on purpose, and the warnings they no longer print.

Dagster warns (``BetaWarning``, ``PreviewWarning``) wherever a beta or preview API is used,
in every process that builds the definitions: the code server, the daemon, each run, the
CLI. For the features in :data:`DELIBERATE` the choice was made knowing their status (the
README's "Dagster features in beta" says why), so their warnings are filtered here: by
category and by the feature's name, so a beta or preview feature that someone starts using
later still warns. Importing the module installs the filters; ``topo_pipeline.definitions``
imports it before anything builds definitions, and so does ``make demo``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class DeliberateFeature:
    """A beta or preview Dagster API the project uses, and why."""

    category: type[Warning]
    name: str
    """How Dagster's warning names it: the start of the warning's message."""
    why: str


DELIBERATE: tuple[DeliberateFeature, ...] = (
    DeliberateFeature(
        dg.BetaWarning,
        "Parameter `backfill_policy` of function",
        "BackfillPolicy.single_run(): a backfill of a year is one run, not 365 (SPEC).",
    ),
    DeliberateFeature(
        dg.BetaWarning,
        "Function `with_source_code_references`",
        "Links each asset in the UI to the code that defines it.",
    ),
    DeliberateFeature(
        dg.BetaWarning,
        "Class `LocalFileCodeReference`",
        "What with_source_code_references attaches to each asset.",
    ),
    DeliberateFeature(
        dg.BetaWarning,
        "Class `CodeReferencesMetadataValue`",
        "What with_source_code_references attaches to each asset.",
    ),
)
"""The features whose warnings are filtered, in the order the README lists them."""


def ignore_deliberate_warnings() -> None:
    """Filter the warnings of :data:`DELIBERATE` in this process (idempotent)."""
    for feature in DELIBERATE:
        warnings.filterwarnings(
            "ignore", message=re.escape(feature.name), category=feature.category
        )


ignore_deliberate_warnings()
