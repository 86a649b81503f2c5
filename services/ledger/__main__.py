"""python -m services.ledger"""

from lockgate.grpc_server import run_service
from services.ledger.app import LedgerSettings, build

if __name__ == "__main__":
    run_service("ledger", LedgerSettings, build)
