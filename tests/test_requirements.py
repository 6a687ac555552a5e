"""Every benchopt component (``objective.py``, ``datasets/*.py``,
``solvers/*.py`` of the four benchmarks) declares, as a literal list of
strings in its own class body, every third-party package it imports: in its
own file, and through the ``solvers_common`` and ``benchmark_utils`` modules
it imports, transitively (a module's parent packages run their
``__init__.py`` when it is imported, so their imports count too).

benchopt reads ``requirements`` statically, with ``ast.literal_eval`` on the
class body (a computed or inherited list is not read), and ``benchopt
install`` installs exactly what is listed; a package missing from it makes
``benchopt install`` leave the component uninstallable. Imports inside
functions count: they run when the function does."""
import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(path.parent for path in ROOT.glob("benchmark_*/objective.py"))
COMPONENTS = sorted(
    path for benchmark in BENCHMARKS
    for path in [benchmark / "objective.py", *benchmark.glob("datasets/*.py"),
                 *benchmark.glob("solvers/*.py")])
CLASS_NAMES = {"objective.py": "Objective", "datasets": "Dataset", "solvers": "Solver"}
# The suite's own code, found in the repository rather than installed.
LOCAL_PACKAGES = {"solvers_common", "benchmark_utils"}
# benchopt runs the components: it is there whenever they are.
NOT_REQUIRED = {"benchopt"}
# Import names whose pip distribution has another name.
PIP_NAMES = {"sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "pillow",
             "yaml": "pyyaml"}


def shown(path):
    """``path`` relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def component_class(path):
    key = path.name if path.name == "objective.py" else path.parent.name
    return CLASS_NAMES[key]


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_name(requirement):
    """The package of a requirement string: ``pip::torch>=2`` -> ``torch``,
    ``conda-forge::numba`` -> ``numba``, ``numpy`` -> ``numpy``."""
    package = requirement.rsplit("::", 1)[-1]
    return normalized(re.split(r"[\s<>=!~;\[]", package, maxsplit=1)[0])


def literal_requirements(path):
    """The ``requirements`` of the component class of ``path``, read as
    benchopt reads them; AssertionError when the class does not assign a
    literal list of strings in its own body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = component_class(path)
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]
    assert len(classes) == 1, f"{path}: no class {name}"
    assignments = [node for node in classes[0].body if isinstance(node, ast.Assign)
                   and any(isinstance(target, ast.Name) and target.id == "requirements"
                           for target in node.targets)]
    assert assignments, (f"{shown(path)}: class {name} does not write its own "
                         "`requirements` (an inherited list is not read by benchopt)")
    try:
        value = ast.literal_eval(assignments[-1].value)
    except ValueError:
        value = None
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), (
        f"{shown(path)}: `requirements` of {name} is not a literal list of strings: "
        f"{ast.unparse(assignments[-1].value)}")
    return value


def module_file(module, benchmark):
    """The file of a local module (``solvers_common.x.y`` or
    ``benchmark_utils.x``), or None for a name that is not one."""
    parts = module.split(".")
    if parts[0] not in LOCAL_PACKAGES:
        return None
    base = benchmark if parts[0] == "benchmark_utils" else ROOT
    stem = base.joinpath(*parts)
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path, benchmark):
    """The dotted name of a local module file."""
    base = benchmark if benchmark / "benchmark_utils" in path.parents else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def with_parent_packages(module):
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs the
    ``__init__.py`` of every package above it."""
    parts = module.split(".")
    return [".".join(parts[:index]) for index in range(1, len(parts) + 1)]


def imported_modules(path, benchmark):
    """The absolute names of the modules that ``path`` imports (a
    ``from package import name`` also imports ``package.name`` when that is
    a module), anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path, benchmark)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            modules.append(base)
            modules += [f"{base}.{alias.name}" for alias in node.names
                        if module_file(f"{base}.{alias.name}", benchmark) is not None]
    return modules


@cache
def third_party_imports(path, benchmark):
    """{pip package: the chain of files that imports it} for ``path`` and
    the local modules it imports, transitively."""
    found, seen, queue = {}, {path}, [(path, (path,))]
    while queue:
        current, chain = queue.pop()
        for module in imported_modules(current, benchmark):
            top = module.split(".")[0]
            if top in LOCAL_PACKAGES:
                for name in with_parent_packages(module):
                    local = module_file(name, benchmark)
                    if local is not None and local not in seen:
                        seen.add(local)
                        queue.append((local, chain + (local,)))
            elif top not in sys.stdlib_module_names and top not in NOT_REQUIRED:
                found.setdefault(PIP_NAMES.get(top, top), chain)
    return found


def component_id(path):
    return shown(path)


def test_every_benchmark_has_components():
    assert len(BENCHMARKS) == 4, BENCHMARKS
    for benchmark in BENCHMARKS:
        assert any(path.parent == benchmark / "solvers" for path in COMPONENTS), benchmark


@pytest.mark.parametrize("path", COMPONENTS, ids=component_id)
def test_requirements_are_literal_and_complete(path):
    benchmark = path.parents[1] if path.name != "objective.py" else path.parent
    declared = {declared_name(requirement) for requirement in literal_requirements(path)}
    needed = third_party_imports(path, benchmark)
    missing = {package: " -> ".join(shown(file) for file in chain)
               for package, chain in needed.items() if normalized(package) not in declared}
    assert not missing, (f"{component_id(path)} imports packages its `requirements` do not "
                         f"declare (package: import chain): {missing}")


# ---------------------------------------------------------------------------
# The checker itself, on files written for it.

def test_the_checker_follows_packages_and_relative_imports(tmp_path, monkeypatch):
    """A solver importing ``benchmark_utils.base``, which imports
    ``solvers_common.fake.leaf``: the third-party imports of the leaf, of
    the package's ``__init__`` and of a relative import are all found."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    third_party_imports.cache_clear()
    benchmark = tmp_path / "benchmark_x"
    (benchmark / "solvers").mkdir(parents=True)
    (benchmark / "benchmark_utils").mkdir()
    package = tmp_path / "solvers_common" / "fake"
    package.mkdir(parents=True)
    (tmp_path / "solvers_common" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from .helper import thing\n")
    (package / "helper.py").write_text("import sklearn.linear_model\nthing = 1\n")
    (package / "leaf.py").write_text("def f():\n    import numba\n")
    (benchmark / "benchmark_utils" / "__init__.py").write_text("")
    (benchmark / "benchmark_utils" / "base.py").write_text(
        "import os\nfrom solvers_common.fake import leaf\nfrom benchopt import BaseSolver\n")
    solver = benchmark / "solvers" / "s.py"
    solver.write_text("import torch\nfrom benchmark_utils.base import BaseSolver\n"
                      "class Solver(BaseSolver):\n    requirements = ['pip::torch']\n")
    found = third_party_imports(solver, benchmark)
    third_party_imports.cache_clear()
    assert set(found) == {"torch", "numba", "scikit-learn"}
    assert [file.name for file in found["scikit-learn"]] == [
        "s.py", "base.py", "__init__.py", "helper.py"]
    assert literal_requirements(solver) == ["pip::torch"]


@pytest.mark.parametrize("body, message", [
    ("requirements = Base.requirements + ['pip::numba']", "not a literal list"),
    ("requirements = ('pip::torch',)", "not a literal list"),
    ("parameters = {}", "does not write its own"),
])
def test_the_checker_refuses_computed_or_inherited_requirements(tmp_path, body, message):
    solver = tmp_path / "solvers" / "s.py"
    solver.parent.mkdir()
    solver.write_text(f"class Solver(Base):\n    {body}\n")
    with pytest.raises(AssertionError, match=message):
        literal_requirements(solver)


def test_requirement_strings_are_read_as_package_names():
    assert declared_name("pip::torch") == "torch"
    assert declared_name("pip::scikit-learn>=1.3") == "scikit-learn"
    assert declared_name("conda-forge::numba") == "numba"
    assert declared_name("Scikit_Image") == "scikit-image"
