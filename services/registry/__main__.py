"""python -m services.registry (several services in one process: python -m services registry …)"""

from lockgate.service_host import main

if __name__ == "__main__":
    main(["registry"])
