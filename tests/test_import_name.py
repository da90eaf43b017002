"""One import name for the device package (issue 16): ``maskcam``, as on a device and in the Lambda and Greengrass
bundles, installed editable from functions/edge (requirements-dev.txt, requirements-model.txt). Nothing of the
project imports it by its folder path under ``functions``, and nothing changes ``sys.path`` in-process: a test
session that did either could hold two copies of the package (two ``FrameRejected`` classes, an ``except`` that
misses). Code that a *subprocess* runs with a sys.path of its own (the Lambda runtime emulation) is a string here,
not code, and only where listed in SUBPROCESS_SYS_PATH."""
import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCANNED = ("tests", "functions", "infra", "model", "scripts")
FOLDER_NAME = re.compile(r"\bfunctions\s*\.\s*edge\b")   # the package's old dotted name, in code or text
# Programs run by a subprocess that set their own sys.path, and why.
SUBPROCESS_SYS_PATH = {
    "tests/test_lambda_bundles.py": "the bundled Lambdas under the runtime's interpreter with -I -S and the sys.path "
                                    "Lambda gives a function (asset, then the standard library, then layers)",
    "tests/test_import_name.py": "the probes of these checks (parsed, never run)",
}
SYS_PATH_IN_TEXT = re.compile(r"\bsys\.path\s*(\[[^\]]*\]\s*=|=|\+=|\.\s*(insert|append|extend|remove|pop|clear)\b)")


def project_files():
    files = [ROOT / "app.py"]
    for top in SCANNED:
        assert (ROOT / top).is_dir(), f"{top}/ is gone: update SCANNED, or the guard would pass without reading it"
        files.extend(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)
    assert ROOT / "infra" / "constructs" / "edge_code.py" in files
    return sorted(files)


def _is_name(node, module: str, attr: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.value, ast.Name)
            and node.value.id == module)


def _is_sys_path(node) -> bool:
    return _is_name(node, "sys", "path")


def sys_path_mutations(tree) -> list:
    """Line numbers where the code (not its strings) changes sys.path or adds a site directory."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if _is_sys_path(node.func.value) or _is_name(node.func, "site", "addsitedir"):
                lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if _is_sys_path(target) or (isinstance(target, ast.Subscript) and _is_sys_path(target.value)):
                    lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            lines.append(node.lineno)
    return sorted(lines)


def strings(tree):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_nothing_names_the_device_package_by_its_folder():
    found = []
    for path in project_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FOLDER_NAME.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "import the device package as `maskcam`:\n" + "\n".join(found)


def test_nothing_changes_sys_path_in_process():
    found, in_strings = [], set()
    for path in project_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT).as_posix()
        found.extend(f"{rel}:{line}" for line in sys_path_mutations(tree))
        if any(SYS_PATH_IN_TEXT.search(s.value) for s in strings(tree)):
            in_strings.add(rel)
    assert not found, "sys.path changed in-process (install the package, or pass PYTHONPATH to a subprocess): " + \
        ", ".join(found)
    assert in_strings == set(SUBPROCESS_SYS_PATH), "a subprocess program sets sys.path; list it with its reason"


def test_the_checks_find_what_they_look_for():
    probe = ast.parse("import sys, site\nsys.path.insert(0, 'x')\nsys.path[:0] = ['x']\nsys.path = []\n"
                      "sys.path += ['x']\nsite.addsitedir('x')\nfrom sys import path\nprint(sys.path[0])\n"
                      "code = 'sys.path.insert(0, x)'\n")
    assert sys_path_mutations(probe) == [2, 3, 4, 5, 6, 7]   # reading sys.path (line 8) or a string (9) is not one
    assert [s.value for s in strings(probe) if SYS_PATH_IN_TEXT.search(s.value)] == ["sys.path.insert(0, x)"]
    assert FOLDER_NAME.search("from functions" + ".edge.maskcam import schema")
    assert not FOLDER_NAME.search("code from functions/edge")


def test_maskcam_is_this_checkout_s_package_and_one_module_object():
    """The venv's editable install points at this working tree (a venv made for another clone would test that
    clone's code), and each module is loaded once: the exception the cloud adapter raises is the one cloud.py
    catches and tests import."""
    import maskcam
    import maskcam.faces
    from maskcam import cloud, rejections
    from maskcam.adapters import aws

    assert Path(maskcam.__file__).resolve() == ROOT / "functions" / "edge" / "maskcam" / "__init__.py"
    assert importlib.import_module("maskcam.faces") is maskcam.faces is sys.modules["maskcam.faces"]
    assert cloud.FrameRejected is aws.FrameRejected is rejections.FrameRejected
    with pytest.raises(cloud.FrameRejected):
        cloud.device_id_of("raw/cam-1/x.jpg")
    twins = [name for name, module in list(sys.modules.items())
             if Path(getattr(module, "__file__", None) or "/").resolve().is_relative_to(ROOT / "functions" / "edge")
             and not (name == "greengrassHelloWorld" or name.split(".")[0] == "maskcam")]
    assert not twins, f"device modules loaded under another name: {twins}"
