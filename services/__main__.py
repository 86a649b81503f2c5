"""python -m services <name> [<name> …]: host these services in one process
(lockgate/service_host.py), e.g. `python -m services router auth`."""

from lockgate.service_host import main

if __name__ == "__main__":
    main()
