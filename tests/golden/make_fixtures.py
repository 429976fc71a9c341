#!/usr/bin/env python3
"""Writes every golden fixture into OUT_DIR by running each tests/golden/gen_*.py.

Each generator is our own PyTorch reference (run with Debian's /usr/bin/python3 and python3-torch)
and exposes generate(out_dir). ctest runs this as the `golden_fixtures` setup test before the C++
tests, so fixtures are always made from the current reference code.
"""
import importlib.util
import pathlib
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make_fixtures.py OUT_DIR", file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    here = pathlib.Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    gens = sorted(here.glob("gen_*.py"))
    for path in gens:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.generate(out)
        print(f"{path.name}: ok")
    print(f"{len(gens)} generators wrote fixtures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
