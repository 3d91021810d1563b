"""notebooks/quickstart.ipynb runs top to bottom at tiny size on CPU (nbclient)."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def _kernel_or_skip():
  for module in ("nbclient", "nbformat", "ipykernel"):
    pytest.importorskip(module, reason=f"{module} is needed to execute the notebook "
                        "(pip install -e .[test])")
  from jupyter_client.kernelspec import KernelSpecManager  # pylint: disable=g-import-not-at-top
  if "python3" not in KernelSpecManager().find_kernel_specs():
    pytest.skip("no 'python3' Jupyter kernel installed (python -m ipykernel install --user)")


def test_quickstart_executes_at_tiny_size(tmp_path, monkeypatch):
  _kernel_or_skip()
  import nbclient  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("TCA_JAX_NOTEBOOK_TINY", "1")
  monkeypatch.setenv("TCA_JAX_NOTEBOOK_WORKDIR", str(tmp_path))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
  client.execute()  # raises CellExecutionError on the first failing cell

  text = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                 for out in cell.get("outputs", []))
  assert "TINY = True" in text
  assert text.count("test accuracy on the 10 recalled digits") == 2
  images = sum("image/png" in out.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for out in cell.get("outputs", []))
  sab = "SAB (k_trunc=5, k_top=5)" in text
  assert images == (2 if sab else 1)  # the curves, and SAB's attention map when it ran
  for run in ("sab", "tbptt") if sab else ("bptt", "tbptt"):
    assert (tmp_path / run / "metrics.jsonl").exists()
