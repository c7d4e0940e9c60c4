"""Running the API with uvicorn (``campus-factory api serve``)."""

from __future__ import annotations

import uvicorn

from ..config import Config
from ..ledger import Ledger
from .app import create_app

__all__ = ["serve"]


def serve(config: Config, ledger: Ledger, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM). Logging stays as configured by the caller."""
    app = create_app(config, ledger)
    uvicorn.run(
        app,
        host=host or config.api.host,
        port=port or config.api.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )
