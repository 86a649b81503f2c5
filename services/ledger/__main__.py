"""python -m services.ledger (several services in one process: python -m services ledger …)"""

from lockgate.service_host import main

if __name__ == "__main__":
    main(["ledger"])
