"""python -m services.registry"""

from lockgate.grpc_server import run_service
from services.registry.app import RegistrySettings, build

if __name__ == "__main__":
    run_service("registry", RegistrySettings, build)
