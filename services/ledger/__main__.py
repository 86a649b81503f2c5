"""python -m services.ledger"""

from lockgate.grpc_server import run, serve_until_signalled
from lockgate.logs import setup_logging
from services.ledger.app import LedgerSettings, build


async def main() -> None:
    settings = LedgerSettings()
    setup_logging("ledger", settings.log_level)
    server, _service, engine = await build(settings)
    await serve_until_signalled(server, on_stop=engine.dispose)


if __name__ == "__main__":
    run(main)
