"""python -m services.registry"""

from lockgate.grpc_server import run, serve_until_signalled
from lockgate.logs import setup_logging
from services.registry.app import RegistrySettings, build


async def main() -> None:
    settings = RegistrySettings()
    setup_logging("registry", settings.log_level)
    server, _service, engine = await build(settings)
    await serve_until_signalled(server, on_stop=engine.dispose)


if __name__ == "__main__":
    run(main)
