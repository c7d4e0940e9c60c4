"""Bearer-token access: mutating actions always need the token; reads need it when configured so.

The token is read once, when the app is built, from ``api.token_file`` (or the environment
variable ``api.token_env``), and compared in constant time. With no token configured every
mutating action is refused (403), so an API without a token is read-only.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..config import ApiOptions
from ..errors import ConfigError

__all__ = ["Access", "load_token"]

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="The API token (api.token_file or api.token_env).")


def load_token(api: ApiOptions) -> str | None:
    """The configured token, or None when neither a file nor an environment variable is set."""
    if api.token_file:
        path = Path(api.token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"api.token_file: cannot read {path}: {exc.strerror or exc}") from exc
        if not token:
            raise ConfigError(f"api.token_file: {path} is empty")
        from ..config.host import secret_file_warning

        warning = secret_file_warning(path, "api.token_file")
        if warning is not None:
            log.warning("%s: %s", warning[1], warning[2])
        return token
    if api.token_env:
        token = os.environ.get(api.token_env, "").strip()
        if not token:
            raise ConfigError(f"api.token_env: the environment variable {api.token_env} is unset or empty")
        return token
    return None


class Access:
    """FastAPI dependencies enforcing the token: :attr:`read` and :attr:`write`."""

    def __init__(self, token: str | None, *, read_only_open: bool) -> None:
        self._token = token
        self.read_only_open = read_only_open
        self.read: Callable[..., str] = self._make(write=False)
        self.write: Callable[..., str] = self._make(write=True)

    def _check(self, creds: HTTPAuthorizationCredentials | None, request: Request, *, write: bool) -> str:
        client = request.client.host if request.client else "unknown"
        if not write and self.read_only_open:
            return f"anonymous@{client}"
        if self._token is None:
            if not write:
                return f"anonymous@{client}"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "mutating actions are disabled: no API token is configured (set api.token_file or api.token_env)",
            )
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(creds.credentials.encode(), self._token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "the bearer token is not valid", headers={"WWW-Authenticate": "Bearer"}
            )
        return f"token@{client}"

    def _make(self, *, write: bool) -> Callable[..., str]:
        def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:  # noqa: B008
            return self._check(creds, request, write=write)

        return dependency
