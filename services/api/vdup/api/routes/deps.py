"""Request dependencies shared by the routes: the app state, and who may call what.

Roles: ``check`` keys (``VDUP_API_KEYS``) are for upload clients; ``moderate`` keys
(``VDUP_MODERATOR_KEYS``) are for review. Reading and deleting catalog entries takes either.
With no key configured at all (local ``make run``) everything is open, as the caller
``anonymous``. A request without a valid key gets 401; a valid key of the wrong role 403.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vdup.api.app import AppState
from vdup.errors import VdupError

Role = Literal["check", "moderate"]


class Unauthorized(VdupError):
    status_code = 401
    code = "unauthorized"


class Forbidden(VdupError):
    status_code = 403
    code = "forbidden"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: name (from 'name:key', else a short hash of the key; never the key
    itself) and the roles of its key."""

    name: str
    roles: frozenset[str]


ANONYMOUS = Caller("anonymous", frozenset({"check", "moderate"}))

_bearer = HTTPBearer(auto_error=False, description="An API key, when keys are configured.")


def get_state(request: Request) -> AppState:
    return request.app.state.vdup


def parse_key(entry: str) -> tuple[str, str]:
    """'name:key' -> (name, key); 'key' -> ('key-' + 8 hex digits of its SHA-256, key)."""
    name, sep, key = entry.partition(":")
    if sep and name and key:
        return name, key
    return "key-" + hashlib.sha256(entry.encode()).hexdigest()[:8], entry


def identify(settings_keys: dict[Role, list[str]], given: str | None) -> Caller | None:
    """The caller whose key is ``given``; ANONYMOUS when no key is configured; None when keys
    are configured and ``given`` matches none. Every key is compared, in constant time each, so
    timing tells nothing about which matched."""
    if not any(settings_keys.values()):
        return ANONYMOUS
    offered = (given or "").encode()
    name = ""
    roles: set[str] = set()
    for role, entries in settings_keys.items():
        for entry in entries:
            key_name, key = parse_key(entry)
            if hmac.compare_digest(offered, key.encode()) and offered:
                name, roles = name or key_name, roles | {role}
    return Caller(name, frozenset(roles)) if roles else None


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The authenticated caller, or 401."""
    settings = request.app.state.vdup.settings
    keys: dict[Role, list[str]] = {
        "check": settings.api_keys,
        "moderate": settings.moderator_keys,
    }
    who = identify(keys, credentials.credentials if credentials else None)
    if who is None:
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>'")
    return who


def role(*allowed: Role):
    """A dependency admitting callers that hold one of ``allowed`` (403 otherwise)."""

    def check(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not who.roles & set(allowed):
            raise Forbidden(f"this needs a key with the {' or '.join(allowed)} role")
        return who

    return check


State = Annotated[AppState, Depends(get_state)]
#: Any valid key (reading and deleting catalog entries).
Authorized = Depends(role("check", "moderate"))
#: Upload clients.
Checker = Depends(role("check"))
#: Moderators.
Moderator = Annotated[Caller, Depends(role("moderate"))]
