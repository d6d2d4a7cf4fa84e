import dagster as dg

from collab_pipelines.intake.schemas import UPLOAD_TYPES

# One dynamic partition per upload, keyed "<uploader>-<first 16 hex digits of its SHA-256>".
upload_partitions = {name: dg.DynamicPartitionsDefinition(name=f"{name}_uploads") for name in UPLOAD_TYPES}


def upload_key(user: str, digest: str) -> str:
    return f"{user}-{digest[:16]}"


def staged_name(key: str, original: str) -> str:
    return f"{key}__{original}"


def split_staged_name(name: str) -> tuple[str, str]:
    key, _, original = name.partition("__")
    return key, original
