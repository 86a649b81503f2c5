"""Generate Python stubs and Envoy's descriptor set from protos/ — the one codegen command.

    python scripts/genproto.py          # write lockgate/<domain>/v1/*_pb2*.py and envoy/lockgate.pb
    python scripts/genproto.py --check  # exit 1 when the committed output is stale (CI)

Generated code is never edited by hand. It lands in lockgate/<domain>/v1/
because protoc derives the Python module path from the proto package
(lockgate.router.v1 -> lockgate/router/v1); those folders hold nothing else.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GOOGLEAPIS = ROOT / "third_party" / "googleapis"
DESCRIPTOR = Path("envoy") / "lockgate.pb"


def _protoc_include() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    (out / DESCRIPTOR).parent.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{GOOGLEAPIS}",
        f"-I{_protoc_include()}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--descriptor_set_out={out / DESCRIPTOR}",
        "--include_imports",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for directory in {(out / f).parent for f in files}:
        # Make every generated folder (and its parents up to lockgate/) a package.
        d = directory
        while d != out:
            (d / "__init__.py").touch()
            d = d.parent


def generated_files(base: Path) -> list[Path]:
    found = [p.relative_to(base) for p in (base / "lockgate").rglob("*_pb2*.py*")]
    return sorted(found) + [DESCRIPTOR]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when output is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = generated_files(out)
        if args.check:
            current = [p for p in generated_files(ROOT) if (ROOT / p).exists()]
            stale = sorted(
                str(p)
                for p in set(fresh) | set(current)
                if not (out / p).exists()
                or not (ROOT / p).exists()
                or not filecmp.cmp(out / p, ROOT / p, shallow=False)
            )
            if stale:
                print("generated code is stale; run `make proto`:", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        for p in fresh:
            (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / p, ROOT / p)
        for p in {p.parent for p in fresh if p.suffix != ".pb"}:
            d = ROOT / p
            while d != ROOT and not (d / "__init__.py").exists():
                (d / "__init__.py").touch()
                d = d.parent
        print(f"generated {len(fresh)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
