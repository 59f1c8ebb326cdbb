"""The one way the gateway is served by uvicorn (`univoice serve`, the embedded gateway of tests and benchmarks):
no `server` header announcing what runs, and with `tls_certfile`/`tls_keyfile` set, HTTPS and WSS that accept
TLS 1.3 only. (In containers TLS is terminated in front of the gateway: see the README's deployment section.)"""

from __future__ import annotations

import ssl

import uvicorn

from gateway.settings import Settings


def uvicorn_server(app, settings: Settings, *, host: str, port: int, **options) -> uvicorn.Server:
    """`app`: an ASGI app, or an import string with `factory=True` in `options`."""
    tls = {"ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile)} \
        if settings.tls_certfile else {}
    config = uvicorn.Config(app, host=host, port=port, server_header=False, **tls, **options)
    config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_3
    return uvicorn.Server(config)
