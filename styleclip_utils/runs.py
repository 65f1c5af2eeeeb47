"""Execute notebooks with papermill into `runs/<name>/`, next to the parameters they ran with.

    python -m styleclip_utils.runs 01_data_prep 03_latent_optimization       # what `make demo` does
    python -m styleclip_utils.runs 01_data_prep -p n_images 200 -p size 64  # override parameters
    python -m styleclip_utils.runs 01_data_prep --inplace   # refresh the committed notebook's outputs

Committed outputs are made, and compared by nbval (`make test`), on the *reference CPU*: the environment
REFERENCE_CPU pins the kernels to AVX2 and the threads to two. Optimisation amplifies the last bit of a
float, and torch, oneDNN and MKL pick other kernels (AVX-512, AMX), which round differently, on other CPUs:
without the pin, an edit's scorecard differs from one x86 CPU to the next, even in fp32.

The executed notebook is first written to a temp file and renamed, so a crash never leaves a half
notebook that looks like a finished run; papermill's own error (the failing cell) is re-raised.
"""
import argparse
import ast
import os
import sys
import time

from pathlib import Path

from .files import write_json
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


# Same kernels on every x86-64 CPU made since 2013: torch's own (ATen), oneDNN's and MKL's (its conditional
# numerical reproducibility); two threads, so that reductions split the same way. The Makefile's nbval line
# sets the same (a test holds them equal).
REFERENCE_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
                 "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}

WIDGET = "application/vnd.jupyter.widget-view+json"


def _clean_for_commit(path, name):
    """What a committed notebook must not carry: papermill's absolute paths of this machine, and progress-bar
    widgets (their state is not saved, so a reader sees only the fallback text of the first update, "0%")."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    nb.metadata.papermill.update(input_path=name, output_path=name)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def run_notebook(name, parameters=None, out_dir=None, progress=True, inplace=False, reference_cpu=None):
    """Run notebooks/<name>.ipynb with papermill -> path of the executed copy in out_dir (runs/<name>/).

    inplace=True writes the executed notebook back over notebooks/<name>.ipynb (to commit its outputs;
    with no parameters, so no machine-specific value is injected). reference_cpu (default: inplace) runs the
    kernel in the REFERENCE_CPU environment, as nbval compares it."""
    import papermill as pm

    src = notebook_path(name)
    out_dir = Path(out_dir or RUNS_DIR / src.stem)
    parameters = dict(parameters or {})
    if inplace and parameters:
        raise ValueError("inplace runs take the committed parameters; do not pass parameters")
    known = pm.inspect_notebook(str(src))
    unknown = sorted(set(parameters) - set(known))
    if unknown:  # papermill would only warn, and the run would silently use the default
        raise ValueError(f"{src.name} has no parameters {unknown}; its parameters: {list(known)}")
    os.makedirs(out_dir, exist_ok=True)
    out = src if inplace else out_dir / src.name
    tmp = out.parent / f".{src.stem}.running.ipynb"
    t0 = time.time()
    pinned = REFERENCE_CPU if (inplace if reference_cpu is None else reference_cpu) else {}
    saved = {k: os.environ.get(k) for k in pinned}
    os.environ.update(pinned)  # the kernel is a new process: it inherits this environment
    try:
        pm.execute_notebook(str(src), str(tmp), parameters=parameters, cwd=str(ROOT), progress_bar=progress,
                            kernel_name="python3")
    except BaseException:
        # never a notebook that looks finished: kept as <name>.failed.ipynb (it shows the failing cell) in
        # out_dir, dropped for an in-place run (notebooks/ holds only committed notebooks)
        if tmp.exists():
            tmp.unlink() if inplace else os.replace(tmp, out_dir / f"{src.stem}.failed.ipynb")
        raise
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    if inplace:
        _clean_for_commit(tmp, src.name)
    os.replace(tmp, out)
    record = dict(notebook=src.name, parameters=parameters, reference_cpu=bool(pinned),
                  seconds=round(time.time() - t0, 1))
    write_json(out_dir / "run.json", record)
    return out


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
    ap.add_argument("--reference-cpu", action="store_true",
                    help="run in the REFERENCE_CPU environment, as nbval compares (always with --inplace)")
    args = ap.parse_args(argv)
    params = {k: parse_value(v) for k, v in args.p}
    for name in args.notebooks:
        notebook_path(name)  # a clear error for a misspelt name before anything runs
    for name in args.notebooks:
        t = time.time()
        out = run_notebook(name, params, inplace=args.inplace, reference_cpu=args.inplace or args.reference_cpu)
        print(f"{name}: {time.time() - t:.0f} s -> {out.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
