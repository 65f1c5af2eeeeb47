"""The package's shape as a specification: one folder per role, and no module imports one of a higher layer."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "styleclip_utils"
# lowest first; a module may import its own layer and those below. train and edit are peers: neither imports
# the other (an editing method must not depend on how its models were trained).
LAYERS = [{"paths", "files", "device", "viz", "schedules", "dist"}, {"data"}, {"models"}, {"weights"}, {"losses"}, {"metrics"},
          {"train", "edit"}, {"checks", "runs", "app"}]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def unit(path, package=PACKAGE):
    """The first part of a module's path inside the package: its folder, or its own name at the top."""
    return path.relative_to(package).with_suffix("").parts[0]


def imported_units(path, package=PACKAGE):
    tree = ast.parse(path.read_text())
    here = path.relative_to(package).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                parts = list(base) + (node.module.split(".") if node.module else [])
                if not parts:  # `from . import x` at the top: x itself
                    parts = [node.names[0].name]
                yield parts[0], node.lineno
            elif node.module and node.module.startswith("styleclip_utils."):
                yield node.module.split(".")[1], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("styleclip_utils."):
                    yield alias.name.split(".")[1], node.lineno


def test_every_module_has_a_layer():
    assert {unit(p) for p in MODULES} == set(LEVEL)


def check_layers(path, package=PACKAGE):
    me = unit(path, package)
    for other, line in imported_units(path, package):
        assert other in LEVEL, f"{path.name}:{line} imports unknown unit {other!r}"
        assert LEVEL[other] <= LEVEL[me], f"{me}/{path.name}:{line} imports {other} (a higher layer)"
        assert {me, other} != {"train", "edit"}, f"{path.name}:{line}: train and edit must not import each other"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    check_layers(path)


@pytest.mark.parametrize("src, message", [("from ..weights import zoo\n", "imports weights"),
                                          ("from styleclip_utils.train.loop import Trainer\n", "imports train")])
def test_the_layering_check_can_fail(tmp_path, src, message):
    fake = tmp_path / "styleclip_utils" / "models" / "bad.py"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text(src)
    with pytest.raises(AssertionError, match=message):
        check_layers(fake, tmp_path / "styleclip_utils")


def test_the_two_generator_loaders_have_distinct_names():
    from styleclip_utils.weights import official, zoo
    assert hasattr(official, "load_stylegan2") and hasattr(zoo, "load_generator")
    assert not hasattr(official, "load_generator")
