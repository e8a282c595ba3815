"""``ferlite serve``: an HTTP API and a live browser page for ferlite, on LiteRT (no TensorFlow).

Needs the ``serve`` extra (``pip install "ferlite[serve]"``: FastAPI and uvicorn). :func:`create_app` builds the
ASGI application from a :class:`ServeConfig` (run it with any ASGI server); ``ferlite serve`` runs it with uvicorn
(:mod:`ferlite.serve.runner`). See ``docs/serving.md`` for the API, the page and the security defaults.
"""

from ferlite.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
