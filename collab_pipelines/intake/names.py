"""Any name an uploader gives, made safe to store under a prefix and to print in a log.

An SFTP client may name a file with anything but "/" and NUL, up to the filesystem's 255
bytes: newlines, terminal escapes, bytes that are not UTF-8 (they arrive as surrogates).
The sensor puts a prefix before a name when it stages or quarantines the file, so a long
name no longer fits (ENAMETOOLONG), and a name printed as it is can forge a log line. So the
landing zone only ever writes safe names, and records the original beside them.
"""

import hashlib
import json
import unicodedata

# Leaves room for the longest prefix and suffixes the landing zone adds
# ("duplicate-<8>-of-<uploader>-<16>__" before, ".sha256.error.txt" after) within 255 bytes.
MAX_SAFE_BYTES = 120
_MAX_EXTENSION = 16
# Control, format (bidirectional overrides), surrogate, private-use, unassigned, line and
# paragraph separators: none of them belong in a file name a person reads.
_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def is_safe(name: str) -> bool:
    return safe_name(name) == name


def safe_name(name: str) -> str:
    """`name` printable and short enough; its extension kept, since validation reads the type from it."""
    cleaned = "".join("_" if c == "\\" or unicodedata.category(c) in _UNSAFE else c for c in name)
    if len(cleaned.encode("utf-8")) <= MAX_SAFE_BYTES:
        return cleaned
    stem, dot, extension = cleaned.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION:
        stem, extension = cleaned, ""
    # A hash of the original keeps two long names that share their beginning apart.
    tail = f"~{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    tail += f".{extension}" if extension else ""
    budget = MAX_SAFE_BYTES - len(tail.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore") + tail


def as_text(name: str) -> str:
    """The name as text a database stores: bytes that were not UTF-8 become U+FFFD."""
    try:
        raw = name.encode("utf-8", "surrogateescape")  # how os.fsdecode carried those bytes
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def encode_original(name: str) -> str:
    """The original name as the record beside a renamed file holds it (JSON, ASCII only)."""
    return json.dumps({"original_name": name}) + "\n"


def decode_original(text: str) -> str:
    return json.loads(text)["original_name"]
