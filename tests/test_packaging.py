"""Tests that keep the project's files consistent with each other and with DESIGN.md."""

import ast
import json
import re
import tomllib
from pathlib import Path

import yaml

from runbook.params import PARAMS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "websocket_disconnects.ipynb"


# conda-forge names that differ from the PyPI ones.
CONDA_TO_PYPI = {"python-fastjsonschema": "fastjsonschema"}


def _requirement_names(specs):
    found = {}
    for spec in specs:
        name = re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower()
        pypi = CONDA_TO_PYPI.get(name, name)
        found[pypi] = spec.replace(" ", "").replace(name, pypi, 1)
    return found


def test_environment_yml_matches_pyproject():
    """environment.yml lists exactly the pyproject dependencies, same bounds."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in env if isinstance(d, str) and re.split(r"[<>=!~ ]", d)[0] not in ("python", "pip")]
    assert _requirement_names(conda) == _requirement_names(project)
    pip_part = next(d["pip"] for d in env if isinstance(d, dict))
    assert "-e ." in pip_part


def test_notebook_parameters_cell_matches_spec():
    """The notebook's parameters cell is the PARAMS spec, line for line."""
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "".join(cell["source"]).strip().splitlines() == [spec.cell_line() for spec in PARAMS]


def test_notebook_committed_without_outputs():
    """The committed notebook has no outputs and no execution counts."""
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        assert not cell.get("outputs") and not cell.get("execution_count")


def test_notebook_pair_in_sync():
    """The .ipynb and its jupytext .py pair hold the same cells."""
    import jupytext

    paired = jupytext.read(NOTEBOOK.with_suffix(".py"))
    committed = jupytext.read(NOTEBOOK)
    assert [(c.cell_type, c.source) for c in paired.cells] == [(c.cell_type, c.source) for c in committed.cells]


def test_notebook_cells_stay_thin():
    """No function or class definitions in notebook cells: logic lives in runbook/."""
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            tree = ast.parse("".join(cell["source"]))
            assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


# Which runbook packages each layer must never import (DESIGN.md, "Layout").
FORBIDDEN = {
    "diagnosis": ("runbook.probes", "runbook.report", "runbook.lab", "runbook.steps", "runbook.cli", "runbook.execute"),
    "logs": ("runbook.probes", "runbook.report", "runbook.lab", "runbook.diagnosis", "runbook.steps", "runbook.cli"),
    "configs": ("runbook.probes", "runbook.report", "runbook.lab", "runbook.diagnosis", "runbook.steps", "runbook.cli"),
    "report": ("runbook.probes", "runbook.lab", "runbook.steps", "runbook.cli", "runbook.execute"),
    "probes": ("runbook.report", "runbook.lab", "runbook.diagnosis", "runbook.steps", "runbook.cli"),
    "lab": ("runbook.steps", "runbook.cli", "runbook.execute"),
    "observations.py": ("runbook.",),
}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_layers_import_one_way():
    """No module imports a layer above it (cli > steps > report/diagnosis/probes/lab > logs)."""
    violations = []
    for layer, banned in FORBIDDEN.items():
        target = ROOT / "runbook" / layer
        files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
        for path in files:
            for module in _imports(path):
                if module.startswith(banned):
                    violations.append(f"{path.relative_to(ROOT)} imports {module}")
    assert violations == []


def test_core_never_imports_io_modules():
    """The pure core (diagnosis, logs parsers) opens no sockets and reads no clock."""
    for layer in ("diagnosis", "logs"):
        for path in (ROOT / "runbook" / layer).rglob("*.py"):
            modules = set(_imports(path))
            assert not modules & {"socket", "asyncio", "websockets", "psutil", "time", "subprocess"}, path
