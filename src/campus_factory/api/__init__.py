"""REST API, Prometheus metrics and the dashboard, all read from the ledger.

``create_app(config, ledger)`` builds the FastAPI app; ``serve`` runs it with uvicorn
(``campus-factory api serve``).
"""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
