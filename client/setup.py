"""collab-pipelines-client: `collab-eval` (try, wait, champion), the data API's Client and
`try_model`, for a data scientist's laptop. No Dagster, no warehouse driver, no server.
With the `reports` extra, `collab-report preview` too (a Jupyter kernel, papermill, nbconvert).

It packages the Dagster-free modules of ../collab_pipelines, and only those:

    pip install ./client                # from a checkout of the project
    pip install './client[reports]'     # and collab-report preview

The main distribution (`pip install .`) holds the same modules and everything else.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent.parent / "collab_pipelines"
# What `collab-eval try` loads with Dagster absent (collab_pipelines_tests/test_structure.py
# checks the same set imports without it), plus the script the sandbox runs.
MODULES = {
    "collab_pipelines": ["__init__", "client", "config", "fault_points", "settings"],
    "collab_pipelines.data_api": ["__init__", "cache", "client"],
    "collab_pipelines.evaluation": [
        "__init__",
        "candidate_process",
        "candidate_script",
        "cli",
        "contract",
        "environments",
        "gates",
        "heldout",
        "inputs",
        "local_try",
        "pins",
        "repos",
        "sandbox",
        "scoring",
        "suites",
        "verdict",
    ],
    # collab-report preview: what it and a template's `report_inputs` load without Dagster.
    "collab_pipelines.reports": [
        "__init__",
        "injection",
        "notebook",
        "preview",
        "publishing",
        "rendering",
        "sources",
        "templates",
    ],
    "collab_pipelines.warehouse": ["__init__", "columns", "datasets"],
}


class ClientModulesOnly(build_py):
    """The packages' listed modules; the rest of each folder needs Dagster or the server."""

    def find_package_modules(self, package, package_dir):
        wanted = set(MODULES.get(package, ()))
        return [entry for entry in super().find_package_modules(package, package_dir) if entry[1] in wanted]


setup(
    name="collab-pipelines-client",
    version="0.1.0",
    description="collab_pipelines for data scientists: collab-eval try, the data API client, try_model",
    python_requires=">=3.11,<3.13",
    packages=list(MODULES),
    package_dir={package: str(SOURCE.joinpath(*package.split(".")[1:])) for package in MODULES},
    install_requires=[
        "pandas>=2.2",
        "pyarrow>=15",
        "scikit-learn>=1.5",
        "httpx>=0.27",
        "pydantic>=2.6",
        "pyyaml>=6",
        "psutil>=5.9",
    ],
    # The offline HTML page the published reports use (reports/publishing.py).
    package_data={"collab_pipelines.reports": ["jupyter/nbconvert/templates/lab/*"]},
    extras_require={
        "locks": ["uv>=0.4"],
        "reports": [
            "papermill>=2.6",
            "nbconvert>=7",
            "ipykernel>=6",
            "matplotlib>=3.8",
            # warehouse/columns.py, which the registry entries of report_inputs name.
            "sqlalchemy>=2.0,<2.1",
        ],
    },
    entry_points={
        "console_scripts": [
            "collab-eval=collab_pipelines.evaluation.cli:main",
            "collab-report=collab_pipelines.reports.preview:main",
        ]
    },
    cmdclass={"build_py": ClientModulesOnly},
)
