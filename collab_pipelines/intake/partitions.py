"""One dynamic partition per upload, keyed "<uploader>-<first 16 hex digits of its SHA-256>"."""

import dagster as dg


def upload_partitions(upload_type: str) -> dg.DynamicPartitionsDefinition:
    # Equal by name: every call gives the same partitions definition.
    return dg.DynamicPartitionsDefinition(name=f"{upload_type}_uploads")


def upload_key(user: str, digest: str) -> str:
    return f"{user}-{digest[:16]}"


def uploader_of(key: str) -> str:
    return key.rsplit("-", 1)[0]


def staged_name(key: str, original: str) -> str:
    return f"{key}__{original}"


def split_staged_name(name: str) -> tuple[str, str]:
    key, _, original = name.partition("__")
    return key, original


def name_record(prefix: str) -> str:
    """Beside `<prefix>__<safe name>`, the file that records the original name it replaced.

    No staged name has this form (those have "__" after the key), so the record is never taken
    for an upload.
    """
    return f"{prefix}.name"


def is_staged_upload(name: str) -> bool:
    return "__" in name
