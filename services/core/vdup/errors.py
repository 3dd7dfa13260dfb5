"""Domain errors, raised in the core and mapped to HTTP status codes at one edge (``vdup.api``).

Each error carries a message meant for the client: it says what was wrong with *their* input or
which dependency is unavailable, never how our code failed inside.
"""

from __future__ import annotations


class VdupError(Exception):
    """Base of every error that the API turns into a clear 4xx/5xx answer."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadMedia(VdupError):
    """The bytes are not a decodable video within the media limits (HTTP 422)."""

    status_code = 422
    code = "bad_media"


class MediaTooLarge(BadMedia):
    """The video exceeds a configured media limit (duration, resolution, frames, audio)."""

    status_code = 413
    code = "media_too_large"


class FetchRefused(VdupError):
    """The link may not be fetched: scheme, address, size or deadline policy (HTTP 400/413/422)."""

    status_code = 400
    code = "fetch_refused"


class FetchFailed(VdupError):
    """The remote server failed us (HTTP 502 to our client: their link, not our fault)."""

    status_code = 502
    code = "fetch_failed"


class FetchTimeout(FetchFailed):
    """The remote server was too slow: connect, per-read or total download deadline (HTTP 504)."""

    status_code = 504
    code = "fetch_timeout"


class NotFound(VdupError):
    status_code = 404
    code = "not_found"


class Conflict(VdupError):
    status_code = 409
    code = "conflict"


class Unavailable(VdupError):
    """A dependency (Triton, an index shard) is down or too slow: fail closed with 503."""

    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(Unavailable):
    """This replica is at its concurrency limit (HTTP 429 with Retry-After)."""

    status_code = 429
    code = "overloaded"


class StorageError(VdupError):
    """The catalog could not durably write (disk full, read-only): nothing was acknowledged."""

    status_code = 507
    code = "storage_error"
