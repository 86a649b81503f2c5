"""python -m services.auth (several services in one process: python -m services auth …)"""

from lockgate.service_host import main

if __name__ == "__main__":
    main(["auth"])
