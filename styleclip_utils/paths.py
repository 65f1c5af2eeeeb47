"""Project folders, found from the package's own location so notebooks work from any working directory
(JupyterLab starts them in notebooks/, papermill and nbval wherever they were called)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
FIGURES_DIR = ROOT / "figures"
RUNS_DIR = ROOT / "runs"
NOTEBOOKS_DIR = ROOT / "notebooks"
RECIPES_DIR = ROOT / "recipes"
WEIGHTS_DIR = DATA_DIR / "weights"
