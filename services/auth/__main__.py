"""python -m services.auth"""

from lockgate.grpc_server import run_service
from services.auth.app import AuthSettings, build

if __name__ == "__main__":
    run_service("auth", AuthSettings, build)
