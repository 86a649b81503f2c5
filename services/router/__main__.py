"""python -m services.router"""

import asyncio
import signal
import sys

from lockgate.grpc_server import run
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    await stop.wait()
    assert app.server is not None
    await app.server.stop()
    await app.close()


if __name__ == "__main__":
    run(main)
