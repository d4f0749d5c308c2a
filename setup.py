"""Compiles the replay and service hot path to C with mypyc; everything else stays Python.

The compiled modules are the same typed source (mypy --strict checks them), so the Python
files remain the reference: set DETECTOR_COMPILE=0 to install the engine uncompiled, as on
a machine without a C compiler. The project's metadata lives in pyproject.toml.
"""

import ast
import contextlib
import io
import os
import sys

from setuptools import Extension, setup

#: Parse, normalize, match and correlate: where a replay spends its time per event.
#: Modules with pydantic models (events, detections, identity) cannot be compiled.
HOT_PATH = [
    "detector/construct.py",
    "detector/redact.py",
    "detector/detection_json.py",
    "detector/single_event.py",
    "detector/event_record.py",
    "detector/identity_map.py",
    "detector/memo.py",
    "detector/normalize/__init__.py",
    "detector/normalize/base.py",
    "detector/normalize/cloudtrail.py",
    "detector/normalize/github.py",
    "detector/normalize/github_actions.py",
    "detector/normalize/gitlab.py",
    "detector/normalize/jenkins.py",
    "detector/normalize/kubernetes.py",
    "detector/normalize/registry.py",
    "detector/rules/detection.py",
    "detector/rules/evaluate.py",
    "detector/rules/fields.py",
    "detector/rules/index.py",
    "detector/rules/routing.py",
    "detector/rules/values.py",
    "detector/correlate/engine.py",
    "detector/correlate/model.py",
    "detector/correlate/keys.py",
    "detector/correlate/packed.py",
    "detector/correlate/windows.py",
    "detector/sources/files.py",
    "detector/sources/merge.py",
    "detector/timestamps.py",
    "detector/pipeline.py",
    "detector/parallel.py",
]


#: mypyc's word for a generator expression it builds as a whole list: a stream read
#: through one would be read to its end first (a whole input file in memory)
EAGER = "Treating generator comprehension as list"


def union_type_tests(path: str) -> list[str]:
    """`isinstance(x, A | B)` in `path`: compiled, it builds the union and runs the
    generic instance check on every call (2,100 instructions once, on each field read);
    `isinstance(x, (A, B))` compiles to a test of each type."""
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    return [
        f"{path}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "isinstance"
        and len(node.args) == 2
        and isinstance(node.args[1], ast.BinOp)
        and isinstance(node.args[1].op, ast.BitOr)
    ]


def compiled_modules() -> list[Extension]:
    if os.environ.get("DETECTOR_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    unions = [place for path in HOT_PATH for place in union_type_tests(path)]
    if unions:
        sys.exit(f"isinstance with a type union; write a tuple of types: {', '.join(unions)}")

    messages = io.StringIO()
    with contextlib.redirect_stdout(messages):
        extensions = mypycify(HOT_PATH, group_name="detector_hotpath")
    sys.stdout.write(messages.getvalue())
    if EAGER in messages.getvalue():
        sys.exit(
            f"{EAGER}: write a generator function, or a list comprehension where a list is meant"
        )
    return extensions


setup(ext_modules=compiled_modules())
