"""The JSON Schema of every configuration file, generated into docs/schemas/ from its model.

    python -m collab_pipelines.schemas           # write docs/schemas/*.schema.json
    python -m collab_pipelines.schemas --check   # exit 1 if a committed schema is stale

Editors validate and complete the files with these (README: "Editing configuration").
Each pattern owns its model; this list is the one place that names them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from collab_pipelines.config import json_schema, schema_text

DOCS_SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@dataclass(frozen=True)
class SchemaFile:
    file: str
    """The schema's file name under docs/schemas/."""
    model: str
    """`module:Model`, the pydantic model of the whole configuration file."""
    title: str
    description: str
    examples: tuple[str, ...] = ()
    """Files in this repository (relative to its root) that must validate against the schema."""


SCHEMA_FILES: tuple[SchemaFile, ...] = (
    SchemaFile(
        file="catalog.schema.json",
        model="collab_pipelines.exports.catalog:CatalogFile",
        title="Export catalog (catalog.yaml)",
        description="Source connections and the exports copied from them into the warehouse.",
        examples=("collab_pipelines/demo/config/catalog.yaml",),
    ),
    SchemaFile(
        file="suites.schema.json",
        model="collab_pipelines.evaluation.suites:SuitesFile",
        title="Evaluation suites (suites.yaml)",
        description="The model repositories continuous evaluation watches, grouped into suites.",
        examples=("docs/examples/evaluation/suites.yaml",),
    ),
    SchemaFile(
        file="collab.schema.json",
        model="collab_pipelines.evaluation.contract:ContractFile",
        title="Model repository contract (collab.toml)",
        description="How continuous evaluation trains, scores and gates a model repository.",
        examples=("docs/examples/evaluation/collab.toml",),
    ),
    SchemaFile(
        file="uploads.schema.json",
        model="collab_pipelines.intake.upload_types:UploadsFile",
        title="Upload types (uploads.yaml)",
        description="What domain teams may upload by SFTP, who uploads which type, and where uploads land.",
        examples=("collab_pipelines/demo/config/uploads.yaml",),
    ),
    SchemaFile(
        file="sftp_accounts.schema.json",
        model="collab_pipelines.intake.sftp_accounts:AccountsFile",
        title="SFTP accounts (sftp_accounts.yaml)",
        description="Who may log in to the intake SFTP server, and how failed logins are limited.",
        examples=("docs/examples/intake/sftp_accounts.yaml", "deploy/sftp/users.example.yaml"),
    ),
    SchemaFile(
        file="report-template.schema.json",
        model="collab_pipelines.reports.templates:TemplateMetadata",
        title="Report template metadata (collab_report, <name>.report.json)",
        description="What a report notebook reads and how it is partitioned: its notebook metadata "
        "under `collab_report`, or a sidecar <name>.report.json beside it.",
        examples=("docs/examples/reports/weather_quality_report.report.json",),
    ),
)


def render(entry: SchemaFile) -> str:
    module_name, _, model_name = entry.model.partition(":")
    model = getattr(importlib.import_module(module_name), model_name)
    return schema_text(json_schema(model, entry.title, entry.description))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if a committed schema differs")
    parser.add_argument("--out", type=Path, default=DOCS_SCHEMAS)
    args = parser.parse_args(argv)
    stale = []
    for entry in SCHEMA_FILES:
        path = args.out / entry.file
        text = render(entry)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            "stale JSON Schemas (run `python -m collab_pipelines.schemas`):",
            *stale,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
