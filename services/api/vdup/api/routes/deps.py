"""Request dependencies shared by the routes: the app state and the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vdup.api.app import AppState
from vdup.errors import VdupError


class Unauthorized(VdupError):
    status_code = 401
    code = "unauthorized"


_bearer = HTTPBearer(auto_error=False, description="An API key, when VDUP_API_KEYS is set.")


def get_state(request: Request) -> AppState:
    return request.app.state.vdup


def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Accept the request when no keys are configured, or its Bearer key matches one of them
    (compared in constant time, every key tried so timing reveals nothing)."""
    keys = request.app.state.vdup.settings.api_keys
    if not keys:
        return
    given = credentials.credentials.encode() if credentials else b""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    if not ok:
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>'")


State = Annotated[AppState, Depends(get_state)]
Authorized = Depends(require_key)
