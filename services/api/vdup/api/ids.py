"""How a checked video gets its id when the client gives none.

Yappy links end in ``/<uuid>.mp4``, and their clients expect that uuid back, so the stem of the
link's file name is the id; a link without a usable stem gets a fresh uuid4.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def id_from_link(link: str) -> str | None:
    """The file-name stem of ``link`` if it is a valid id, else None."""
    path = urlsplit(link).path if "://" in link else link
    stem = PurePosixPath(unquote(path)).stem
    return stem if stem and valid_id(stem) else None
