"""python -m services.router (several services in one process: python -m services router …)"""

from lockgate.service_host import main

if __name__ == "__main__":
    main(["router"])
