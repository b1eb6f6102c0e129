"""The two packages and the rule between them.

* ``course_utils`` (the student library) never imports ``course_kit`` (the instructor kit);
* ``course_kit`` imports without torch: its modules load, and ``course --help`` and every
  command's ``--help`` answer, in a Python where ``import torch`` fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDENT, KIT = ROOT / "course_utils", ROOT / "course_kit"
# The one module of the kit that trains (course bench's cases); course_kit.bench loads it
# only when the benchmark runs.
KIT_MODULES_WITH_TORCH = {"course_kit.bench_cases"}

# Run in a fresh interpreter: a finder that refuses torch, then the given code.
NO_TORCH = """
import sys

class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, RefuseTorch())
"""


def _modules(package: Path) -> list[str]:
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def _run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_student_library_never_imports_the_instructor_kit():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imported_names(path) if n.split(".")[0] == "course_kit")
        for path in STUDENT.rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_the_rule_checker_sees_imports():
    # The check above must be able to fail: it finds every form of import it looks for.
    source = "import course_kit\nfrom course_kit.grading import checks\nimportlib.import_module('course_kit.cli')\n"
    probe = ROOT / "tests" / ".import-probe.py"
    probe.write_text(source)
    try:
        assert _imported_names(probe) == {"course_kit", "course_kit.grading", "course_kit.cli"}
    finally:
        probe.unlink()


def test_instructor_kit_imports_without_torch():
    modules = [m for m in _modules(KIT) if m not in KIT_MODULES_WITH_TORCH]
    assert "course_kit.grading.runner" in modules and "course_kit.cli" in modules
    code = (
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('torch' in sys.modules, 'course_utils' in sys.modules)\n"
    )
    result = _run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_the_torch_block_works():
    result = _run_without_torch("import torch\n")
    assert result.returncode != 0 and "blocked in this test" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["release"],
        ["references"],
        ["grade"],
        ["fetch"],
        ["bench"],
        ["export"],
        ["autograder"],
        ["feedback"],
        ["submit"],
        ["pair"],
    ],
)
def test_course_help_answers_without_torch(command):
    code = (
        "from course_kit.cli import main\n"
        f"try:\n    main({command + ['--help']!r})\nexcept SystemExit as end:\n    assert end.code in (0, None)\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    result = _run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert "usage: course" in result.stdout and "torch loaded: False" in result.stdout


def test_the_student_library_has_a_small_documented_public_api():
    import inspect
    import types

    import course_utils as cu

    assert len(cu.__all__) == 32, len(cu.__all__)  # README says "32 public names"
    # Everything else at the top level is a topic's subpackage, or private.
    extra = {name for name in dir(cu) if not name.startswith("_")} - set(cu.__all__)
    assert all(isinstance(getattr(cu, name), types.ModuleType) for name in extra), extra
    for name in cu.__all__:
        obj = getattr(cu, name)
        if isinstance(obj, (tuple, str)):
            continue  # constants (STRATEGIES)
        doc = inspect.getdoc(obj) or ""
        summary = doc.split("\n\n")[0]
        assert summary and "\n" not in summary.strip() or len(summary) < 200, f"{name}: one summary line"
        assert ">>>" in doc, f"cu.{name} has no example"


def test_examples_run_as_doctests():
    """pytest collects the packages' doctests (testpaths and --doctest-modules in pyproject.toml)."""
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in options["addopts"]
    assert {"course_utils", "course_kit"} <= set(options["testpaths"])


def test_both_packages_and_the_distribution_carry_one_version():
    """Gradebook rows record the kit's version; the distribution takes it from course_kit (pyproject)."""
    from importlib.metadata import version

    import course_kit
    import course_utils

    assert course_utils.__version__ == course_kit.__version__ == version("course-utils")
