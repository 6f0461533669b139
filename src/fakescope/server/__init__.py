"""``fakescope serve``: a web app and REST API over one loaded ``Scanner`` (jobs in SQLite under a data folder,
one scan worker, the pages, and live detection over a WebSocket)."""
from .app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
