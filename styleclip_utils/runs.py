"""Execute notebooks with papermill into `runs/<name>/`, next to the parameters they ran with.

    python -m styleclip_utils.runs 01_data_prep 03_latent_optimization       # what `make demo` does
    python -m styleclip_utils.runs 01_data_prep -p n_images 200 -p size 64  # override parameters
    python -m styleclip_utils.runs 01_data_prep --inplace   # refresh the committed notebook's outputs

The executed notebook is first written to a temp file and renamed, so a crash never leaves a half
notebook that looks like a finished run; papermill's own error (the failing cell) is re-raised.
"""
import argparse
import ast
import json
import os
import sys
import time

from pathlib import Path

from .paths import NOTEBOOKS_DIR, ROOT, RUNS_DIR


def notebook_path(name):
    """notebooks/<name>.ipynb, or `name` itself when it is the path of a notebook file."""
    if str(name).endswith(".ipynb") and Path(name).is_file():
        return Path(name)
    path = NOTEBOOKS_DIR / (name if str(name).endswith(".ipynb") else name + ".ipynb")
    if not path.exists():
        available = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
        raise FileNotFoundError(f"no notebook {path.name} in {NOTEBOOKS_DIR}; available: {available}")
    return path


def _without_injected_cell(src, out_dir):
    """A committed notebook may keep the cell papermill injected when its outputs were made (how they were
    made, e.g. notebook 00's CLIP fine-tune). papermill replaces that cell only when given parameters; without
    any it would run it again. So run a copy without it: no parameters means the parameters cell's values."""
    import nbformat
    nb = nbformat.read(src, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if len(cells) == len(nb.cells):
        return src
    nb.cells = cells
    path = Path(out_dir) / f".{src.stem}.input.ipynb"
    nbformat.write(nb, path)
    return path


def run_notebook(name, parameters=None, out_dir=None, progress=True, inplace=False):
    """Run notebooks/<name>.ipynb with papermill -> path of the executed copy in out_dir (runs/<name>/).

    inplace=True writes the executed notebook back over notebooks/<name>.ipynb (to commit its outputs;
    with no parameters, so no machine-specific value is injected)."""
    import papermill as pm

    src = notebook_path(name)
    out_dir = Path(out_dir or RUNS_DIR / src.stem)
    os.makedirs(out_dir, exist_ok=True)
    parameters = dict(parameters or {})
    if inplace and parameters:
        raise ValueError("inplace runs take the committed parameters; do not pass parameters")
    out = src if inplace else out_dir / src.name
    tmp = out.parent / f".{src.stem}.running.ipynb"
    t0 = time.time()
    source = _without_injected_cell(src, out_dir)
    try:
        pm.execute_notebook(str(source), str(tmp), parameters=parameters, cwd=str(ROOT), progress_bar=progress,
                            kernel_name="python3")
    finally:
        if source != src:
            source.unlink()
    if inplace:  # papermill records absolute paths of this machine: keep the committed file portable
        import nbformat
        nb = nbformat.read(tmp, as_version=4)
        nb.metadata.papermill.update(input_path=src.name, output_path=src.name)
        nbformat.write(nb, tmp)
    os.replace(tmp, out)
    record = dict(notebook=src.name, parameters=parameters, seconds=round(time.time() - t0, 1))
    (out_dir / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    return out


def _parameters_cell(nb):
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None or "parameters" not in cell.metadata.get("tags", []):
        raise ValueError("the first code cell of the notebook is not tagged 'parameters'")
    return cell


def notebook_parameters(name):
    """The committed values of a notebook's parameters cell, {name: value}, in order (one literal a line)."""
    import nbformat
    return _parameter_values(_parameters_cell(nbformat.read(notebook_path(name), as_version=4)))


def _parameter_values(cell):
    values = {}
    for node in ast.parse(cell.source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"parameters cell line {node.lineno} is not `name = literal`")
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def set_parameters(name, **values):
    """Rewrite committed parameter values in place (comments kept), e.g. the steps a shipped model trained for."""
    import nbformat
    path = notebook_path(name)
    nb = nbformat.read(path, as_version=4)
    cell = _parameters_cell(nb)
    known = _parameter_values(cell)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{path.name} has no parameters {unknown}; it has {sorted(known)}")
    lines = cell.source.splitlines()
    for i, line in enumerate(lines):
        key, _, rest = line.partition("=")
        if key.strip() in values:
            old, comment = rest.split("#", 1) if "#" in rest else (rest, None)
            new = f"{key.strip()} = {values[key.strip()]!r}"
            pad = max(1, len(key) + 1 + len(old) - len(new))  # keep the comments aligned where they fit
            lines[i] = new + (" " * pad + "#" + comment if comment is not None else "")
    cell.source = "\n".join(lines)
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def parse_value(text):
    """A command-line value as a Python literal ("64", "[1, 2]", "'x'"), or the bare string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+", help="names like 01_data_prep")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a parameter (Python literal) in every notebook run")
    ap.add_argument("--inplace", action="store_true", help="execute into notebooks/ (committed outputs)")
    args = ap.parse_args(argv)
    params = {k: parse_value(v) for k, v in args.p}
    for name in args.notebooks:
        notebook_path(name)  # a clear error for a misspelt name before anything runs
    for name in args.notebooks:
        t = time.time()
        out = run_notebook(name, params, inplace=args.inplace)
        print(f"{name}: {time.time() - t:.0f} s -> {out.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
