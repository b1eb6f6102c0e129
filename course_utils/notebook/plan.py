"""What a notebook trains, as its profile file declares it: the ``plan:`` section, evaluated on a profile's knobs.

Each notebook's profile file (``profiles/<notebook>.yaml``) lists its blocks of training under
``plan:``, written in the notebook's own knob names. One entry per block::

    - what: pretrained and from scratch, per fraction and seed   # for people
      for_each: {fraction: fractions}    # optional: the block repeats per value (nested, in order)
      model: backbone                    # the architecture trained
      times: 2 * len(seeds)              # trainings per value of for_each
      train_images: fraction * train     # images per epoch
      batch_size: batch_size
      epochs: num_epochs
      eval_images: test                  # optional: images evaluated per training (default 0)
      image_size: image_size             # optional (this is the default)
      rows: {fraction: fraction, budget: short}   # the result rows these trainings save

A training of a block takes ``ceil(train_images / batch_size) x epochs`` steps. Values are
expressions over the profile's knobs, ``train`` and ``test`` (the data's sizes: synthetic,
digits, CIFAR-10 or the fruit folder, see :func:`data_sizes`) and the ``for_each`` names,
evaluated by a small evaluator (:func:`evaluate`): numbers, names, ``+ - * / //``, ``len``,
``ceil``, ``floor``, ``min``, ``max`` and constant subscripts such as ``fractions[0]``; nothing
else (no ``eval``). ``rows`` says which rows of the run's results record the block's trainings
save, one each: a column named after a ``for_each`` name must hold that value, ``null`` means
"has the column", anything else is the literal value. An entry with ``untrained_rows: N``
instead declares rows that no training makes (notebook 04's two deployment rows).

The run-time estimate (:mod:`course_utils.notebook.estimate`) and ``course run --robustness``
read the same plan, and ``tests/test_run_plans.py`` checks it against the rows runs save. This
module needs only PyYAML: the instructor kit loads it on its own, without torch.

Example:
    >>> knobs = {"backbone": "alexnet", "fractions": [0.1, 0.5], "seeds": [0], "batch_size": 16,
    ...          "num_epochs": 1, "budget_factor": 5, "image_size": 64}
    >>> blocks = declared_blocks("01_alexnet_data_fraction", knobs, train=200, test=100)
    >>> for b in blocks:
    ...     print(b.model, b.times, "x", b.steps_per_run, "steps", b.rows)
    alexnet 2 x 2 steps {'fraction': 0.1, 'budget': 'short'}
    alexnet 2 x 7 steps {'fraction': 0.5, 'budget': 'short'}
    alexnet 1 x 10 steps {'budget': 'long'}
    >>> evaluate("ceil(fractions[0] * train / 3)", {"fractions": [0.5], "train": 10}, "where")
    2
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
CIFAR10_SIZES = (50_000, 10_000)
DIGITS_SIZES = (1_348, 449)  # scikit-learn's 1,797 digits, a quarter held out per class
FRUIT_SIZES = (10_901, 2_698)  # Kaggle's "Fruits fresh and rotten for classification"
TRAINING_FIELDS = ("model", "times", "train_images", "batch_size", "epochs")
OPTIONAL_FIELDS = ("what", "for_each", "eval_images", "image_size", "rows")

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
}
_FUNCTIONS = {"len": len, "ceil": math.ceil, "floor": math.floor, "min": min, "max": max}


@dataclass
class Block:
    """One block of a notebook's plan on one profile: ``times`` trainings of ``model``, each ``steps_per_run`` steps."""

    what: str
    model: str
    times: int
    steps_per_run: int
    batch_size: int
    image_size: int
    eval_images: int = 0
    rows: dict = field(default_factory=dict)  # the columns that tell this block's result rows from the others

    @property
    def steps(self) -> int:
        return self.times * self.steps_per_run


@dataclass
class Plan:
    """A notebook's plan on one profile: its training blocks and the rows it saves without training."""

    notebook: str
    blocks: list[Block]
    untrained_rows: int = 0

    @property
    def runs(self) -> int:
        return sum(b.times for b in self.blocks)

    @property
    def steps(self) -> int:
        return sum(b.steps for b in self.blocks)


def evaluate(expression, scope: dict, where: str):
    """The value of one plan expression (a number, or text such as ``"fraction * train"``) in ``scope``.

    Raises:
        ValueError: anything outside the small language of the module notes, or an unknown
            name; the message starts with ``where`` (the notebook and the entry).

    Example:
        >>> evaluate("max(2, len(seeds)) * 3 // 2", {"seeds": [0]}, "here")
        3
        >>> try:
        ...     evaluate("__import__('os')", {}, "01, entry 1")
        ... except ValueError as error:
        ...     print(str(error).replace(": only", ":\\n only").replace(" (found", "\\n (found"))
        01, entry 1: `__import__('os')`:
         only numbers, knob names, + - * / //, len/ceil/floor/min/max and constant subscripts are allowed
         (found a call of __import__)
    """
    if isinstance(expression, (int, float)) and not isinstance(expression, bool):
        return expression
    if not isinstance(expression, str):
        raise ValueError(f"{where}: {expression!r} is not an expression (write a number or text like `num_epochs * 2`)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"{where}: `{expression}` is not a valid expression ({error.msg})") from None

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in scope:
                raise ValueError(f"{where}: `{expression}` names {node.id!r}, which is no knob here ({_names(scope)})")
            return scope[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id in _FUNCTIONS:
                return _FUNCTIONS[node.func.id](*(value(a) for a in node.args))
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.value, ast.Name)
        ):
            if isinstance(node.slice.value, int):
                return value(node.value)[node.slice.value]
        raise ValueError(
            f"{where}: `{expression}`: only numbers, knob names, + - * / //, len/ceil/floor/min/max and constant "
            f"subscripts are allowed (found {_describe(node)})"
        )

    return value(tree.body)


def _names(scope: dict) -> str:
    return ", ".join(sorted(scope))


def _describe(node) -> str:
    if isinstance(node, ast.Call):
        return f"a call of {ast.unparse(node.func)}"
    return f"`{ast.unparse(node)}`"


def declared_entries(notebook: str) -> list[dict]:
    """The raw ``plan`` entries of ``notebook``'s profile file.

    Raises:
        ValueError: the notebook has no profile file or its file no ``plan:`` section (the
            message says where to add one), or an entry lacks a field or has an unknown one.
    """
    path = PROFILE_DIR / f"{notebook}.yaml"
    entries = (yaml.safe_load(path.read_text()) or {}).get("plan") if path.exists() else None
    if not entries:
        raise ValueError(
            f"No run-time plan for notebook {notebook!r}: add a `plan:` section to {path} listing what it "
            "trains, block by block (see course_utils/notebook/plan.py)."
        )
    for number, entry in enumerate(entries, 1):
        where = f"{path.name}, plan entry {number}"
        fields = ("untrained_rows", "what", "rows") if "untrained_rows" in entry else TRAINING_FIELDS + OPTIONAL_FIELDS
        unknown = sorted(set(entry) - set(fields))
        missing = [] if "untrained_rows" in entry else [f for f in TRAINING_FIELDS if f not in entry]
        if unknown or missing:
            raise ValueError(f"{where}: unknown fields {unknown}, missing {missing}; an entry has {', '.join(fields)}.")
    return entries


def declared_blocks(notebook: str, knobs: dict, train: int, test: int) -> list[Block]:
    """The training blocks of ``notebook``'s plan with these knob values and data sizes (see :func:`declared_plan`)."""
    return declared_plan(notebook, knobs, train, test).blocks


def declared_plan(notebook: str, knobs: dict, train: int, test: int) -> Plan:
    """``notebook``'s plan evaluated on ``knobs`` (a profile's resolved knobs) and the data's sizes.

    Each entry gives one :class:`Block` per value of its ``for_each`` (nested in the declared order).

    Example:
        >>> from course_utils.notebook.parameters import read_profile
        >>> knobs, session = read_profile("04_multitask_fruit", "smoke")
        >>> plan = declared_plan("04_multitask_fruit", knobs, *data_sizes(knobs, session))
        >>> plan.runs, plan.untrained_rows, plan.steps
        (3, 2, 6)
    """
    scope_base = {k: v for k, v in knobs.items() if k != "profile"}
    scope_base.update(train=train, test=test)
    blocks, untrained = [], 0
    for number, entry in enumerate(declared_entries(notebook), 1):
        where = f"{notebook}, plan entry {number} ({entry.get('what', '')})"
        if "untrained_rows" in entry:
            untrained += evaluate(entry["untrained_rows"], scope_base, where)
            continue
        names = list((entry.get("for_each") or {}).items())
        lists = [evaluate(expression, scope_base, where) for _, expression in names]
        for values in itertools.product(*lists):
            scope = {**scope_base, **dict(zip([n for n, _ in names], values))}
            blocks.append(_block(entry, scope, where))
    return Plan(notebook, blocks, untrained)


def _block(entry: dict, scope: dict, where: str) -> Block:
    def field_value(name, default=None):
        return evaluate(entry.get(name, default), scope, f"{where}, {name}")

    batch_size = field_value("batch_size")
    model = field_value("model")
    steps = math.ceil(field_value("train_images") / batch_size) * field_value("epochs")
    rows = {
        column: scope[v] if isinstance(v, str) and v in (entry.get("for_each") or {}) else v
        for column, v in (entry.get("rows") or {}).items()
    }
    return Block(
        what=entry.get("what", ""),
        model=model,
        times=field_value("times"),
        steps_per_run=steps,
        batch_size=batch_size,
        image_size=field_value("image_size", "image_size"),
        eval_images=field_value("eval_images", 0),
        rows=rows,
    )


def data_sizes(knobs: dict, session: dict, data_dir: Path | None = None) -> tuple[int, int]:
    """``(train, test)``: how many images the notebook's data has with these knobs and session settings.

    Synthetic fruit or CIFAR-10 stand-ins by the profile's counts, scikit-learn's digits, the
    fruit photos counted in ``data_dir``'s fruit folder (the published sizes when it is not
    there), else CIFAR-10.

    Example:
        >>> stand_in = {"synthetic_data": True, "synthetic_per_class": [2, 1]}
        >>> data_sizes({"dataset": "digits"}, {}), data_sizes({}, stand_in)
        ((1348, 449), (20, 10))
    """
    if "fruit_root" in knobs:
        if knobs["fruit_root"] == "synthetic":
            train, test = knobs.get("synthetic_fruit_per_class", [24, 12])
            return 6 * train, 6 * test
        root = Path(data_dir or "") / knobs["fruit_root"]
        if data_dir is not None and (root / "train").is_dir():
            count = lambda folder: sum(1 for p in Path(folder).rglob("*") if p.is_file())  # noqa: E731
            return count(root / "train"), count(root / "test")
        return FRUIT_SIZES
    if knobs.get("dataset") == "digits":
        return DIGITS_SIZES
    if session.get("synthetic_data"):
        train, test = session["synthetic_per_class"]
        return 10 * train, 10 * test
    return CIFAR10_SIZES


def rows_of(block: Block, rows: list[dict]) -> list[dict]:
    """The result rows ``block`` declares it saves: each of its ``rows`` columns holds its value (None: any value).

    Example:
        >>> block = Block("", "alexnet", 2, 5, 16, 64, rows={"fraction": 0.1, "seed": None})
        >>> rows_of(block, [{"fraction": 0.1, "seed": 0}, {"fraction": 0.2, "seed": 0}, {"fraction": 0.1}])
        [{'fraction': 0.1, 'seed': 0}]
    """
    return [
        row
        for row in rows
        if all(column in row and (value is None or row[column] == value) for column, value in block.rows.items())
    ]
