"""python -m services.router"""

import sys

from lockgate.grpc_server import run, serve_until_signalled
from lockgate.logs import setup_logging
from services.router.app import RouterApp, RouterSettings
from services.router.config import ConfigError
from services.router.spool import SpoolInUse


async def main() -> None:
    settings = RouterSettings()
    setup_logging("router", settings.log_level)
    try:
        app = RouterApp(settings)
    except ConfigError as exc:
        print(f"lockgate router: invalid gateway config:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except SpoolInUse as exc:
        print(f"lockgate router: {exc}; give each replica its own data dir", file=sys.stderr)
        raise SystemExit(2) from None
    # Drain in-flight calls first, then flush usage and close upstream connections.
    await serve_until_signalled(await app.build_server(), on_stop=app.close)


if __name__ == "__main__":
    run(main)
