"""python -m services.auth"""

from lockgate.grpc_server import run, serve_until_signalled
from lockgate.logs import setup_logging
from services.auth.app import AuthSettings, build


async def main() -> None:
    settings = AuthSettings()
    setup_logging("auth", settings.log_level)
    server, _service, engine = await build(settings)
    await serve_until_signalled(server, on_stop=engine.dispose)


if __name__ == "__main__":
    run(main)
