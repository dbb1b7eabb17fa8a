"""``python -m asya.gateway migrate | serve``.

``migrate`` applies the missing schema migrations and exits (the chart runs it
as a Job / Argo CD PreSync hook before the Deployment rolls); ``serve`` runs the
app under uvicorn. Both read ``GatewaySettings`` from the environment; ``migrate``
needs only ``ASYA_GATEWAY_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from asya.gateway.settings import GatewaySettings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asya.gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply the missing database migrations, then exit")
    sub.add_parser("serve", help="serve the REST API (uvicorn)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("ASYA_LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "migrate":
        return _migrate()
    return _serve()


def _migrate() -> int:
    from asya.gateway.migrations import migrate

    dsn = os.environ.get("ASYA_GATEWAY_DATABASE_URL", "")
    if not dsn:
        print("ASYA_GATEWAY_DATABASE_URL is required", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate(dsn))
    print(f"applied migrations: {applied}" if applied else "schema is current")
    return 0


def _serve() -> int:
    import uvicorn

    from asya.gateway.app import create_app

    try:
        settings = GatewaySettings.from_env()
    except SettingsError as exc:
        print(f"asya gateway: {exc}", file=sys.stderr)
        return 2
    from asya.gateway.tools import ToolConfigError

    try:
        app = create_app(settings)
    except ToolConfigError as exc:  # names the file and the field: a message, not a traceback
        print(f"asya gateway: ASYA_GATEWAY_TOOLS: {exc}", file=sys.stderr)
        return 2
    # uvicorn's access log prints method, path and status, never headers: tokens stay out of logs.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
