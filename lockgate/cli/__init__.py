"""The `lockgate` command line: one module per command, argparse only.

Command modules import heavy things (grpc, the stack) inside their handlers,
so `lockgate --help` and `lockgate sim` start fast.
"""
