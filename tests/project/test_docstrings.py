"""Every public function and class documents its parameters and shows an example.

Public means: what ``fusemap``, ``fusemap.tl`` and ``fusemap.pl`` export in ``__all__``, the
functions of ``fusemap.datasets``, and the user-facing functions of ``fusemap.io`` (the R package's
exchange helpers excepted). For each, the numpy-style docstring (as the API reference in docs/
renders it with napoleon) must have an ``Examples`` section, and a ``Parameters`` section naming
every parameter of the signature unless there is none. Classes document their constructor's
parameters (for dataclasses, each field in a Parameters or Attributes section or by an attribute
docstring), and their public methods follow the same rules. The Sphinx build (``make docs``,
warnings as errors) checks that the docstrings parse; this test checks that they are complete.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import textwrap

MODULES = ("fusemap", "fusemap.tl", "fusemap.pl")
EXTRA = {
    "fusemap.datasets": ("simulate", "mosaic_panels", "data_dir", "has_data", "load", "starmap_mpfc",
                         "starmap_mosaic"),
    "fusemap.io": ("read_sections", "SectionSet", "write_h5ad", "read_rds", "write_rds", "anndata_to_spe",
                   "spe_to_anndata"),
    "fusemap.io.backed": ("open_sections",),
    "fusemap.io.spatialdata": ("sections_from_spatialdata", "save_spatialdata", "add_imputed_table",
                               "write_results", "annotating_tables"),
}
"""Public objects outside the three exporting modules' ``__all__``."""

R_EXCHANGE = {"anndata_from_parts", "anndata_from_r", "anndata_to_parts", "frame_for_r", "frame_from_part",
              "frame_to_part", "from_wire", "gene_embedding_for_r", "imputed_for_r", "matrix_from_part",
              "matrix_to_part", "obsm_for_r", "parts_for_r", "read_h5ad_parts", "to_wire"}
"""``fusemap.io`` exports that only the R package calls: documented in one line each, not checked here."""

MINIMUM = {"fusemap": 14, "fusemap.tl": 20, "fusemap.pl": 10, "extra": 20, "methods": 20}
"""How many objects are checked at least (exports may grow): the test can never pass vacuously."""


def sections(doc: str) -> dict[str, str]:
    """numpy-style section title -> its body (the text before the first title is under '')."""
    lines = doc.splitlines()
    out: dict[str, list[str]] = {"": []}
    current = ""
    i = 0
    while i < len(lines):
        title = lines[i].strip()
        if (i + 1 < len(lines) and title and set(lines[i + 1].strip()) == {"-"}
                and len(lines[i + 1].strip()) == len(title) and lines[i] == lines[i].lstrip()):
            current = title
            out[current] = []
            i += 2
            continue
        out[current].append(lines[i])
        i += 1
    return {k: "\n".join(v) for k, v in out.items()}


def documented_names(body: str) -> set[str]:
    """Names listed at the left margin of a Parameters/Attributes body (``a, b : type`` form too)."""
    names = set()
    for line in textwrap.dedent(body).splitlines():
        if not line or line[0].isspace():
            continue
        for part in line.split(" : ")[0].split(","):
            names.add(part.strip().lstrip("*"))
    return names


def attribute_docstrings(cls: type) -> set[str]:
    """Fields of a class body followed by a string literal (the attribute docstrings autodoc shows)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return set()
    body = tree.body[0].body
    out = set()
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            out.add(stmt.target.id)
    return out


def parameters(func) -> list[str]:
    """Parameter names of a callable as its docstring should list them (no self/cls)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")]


def problems(name: str, obj) -> list[str]:
    """What the docstring of ``obj`` lacks (empty when complete)."""
    doc = inspect.getdoc(obj) if not isinstance(obj, property) else obj.__doc__
    if not doc or not doc.strip():
        return [f"{name}: no docstring"]
    if isinstance(obj, property):
        return []  # a property is documented by its one line
    secs = sections(inspect.cleandoc(doc))
    found = []
    if "Examples" not in secs:
        found.append(f"{name}: no Examples section")
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return found  # exceptions take the message only
        listed = documented_names(secs.get("Parameters", "")) | documented_names(secs.get("Attributes", ""))
        if dataclasses.is_dataclass(obj):
            wanted = [f.name for f in dataclasses.fields(obj) if f.init]
            listed |= attribute_docstrings(obj)
        else:
            wanted = parameters(obj.__init__) if "__init__" in vars(obj) else []
    else:
        wanted = parameters(obj)
        listed = documented_names(secs.get("Parameters", ""))
    missing = [p for p in wanted if p not in listed]
    if missing and "Parameters" not in secs and "Attributes" not in secs:
        found.append(f"{name}: no Parameters section for {missing}")
    elif missing:
        found.append(f"{name}: parameters not documented: {missing}")
    return found


def public_objects() -> dict[str, list[tuple[str, object]]]:
    out: dict[str, list[tuple[str, object]]] = {m: [] for m in MODULES}
    out["extra"] = []
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if modname == "fusemap.io" and name in R_EXCHANGE:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                out[modname].append((f"{modname}.{name}", obj))
    for modname, names in EXTRA.items():
        mod = importlib.import_module(modname)
        out["extra"] += [(f"{modname}.{n}", getattr(mod, n)) for n in names]
    return out


def public_methods(cls: type) -> list[tuple[str, object]]:
    """Public methods and properties defined in the class itself (not inherited)."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((f"{cls.__module__}.{cls.__qualname__}.{name}", value))
    return out


def test_the_checker_flags_incomplete_docstrings():
    def complete(a, *, b=1):
        """Do it.

        Parameters
        ----------
        a, b
            Things.

        Examples
        --------
        >>> complete(1)
        """

    def lacking(a, b):
        """Do it.

        Parameters
        ----------
        a : int
            A thing.
        """

    assert problems("complete", complete) == []
    assert problems("lacking", lacking) == ["lacking: no Examples section",
                                            "lacking: parameters not documented: ['b']"]
    assert problems("bare", lambda: None) == ["bare: no docstring"]


def test_every_public_function_and_class_is_documented():
    groups = public_objects()
    classes = [obj for objs in groups.values() for _, obj in objs if inspect.isclass(obj)]
    methods = [m for cls in classes for m in public_methods(cls)]
    counts = {k: len(v) for k, v in groups.items()} | {"methods": len(methods)}
    print("checked:", counts)
    for key, least in MINIMUM.items():
        assert counts[key] >= least, (key, counts[key])
    found = [p for objs in groups.values() for name, obj in objs for p in problems(name, obj)]
    found += [p for name, obj in methods for p in problems(name, obj)]
    assert not found, f"{len(found)} docstring problem(s):\n" + "\n".join(found)
