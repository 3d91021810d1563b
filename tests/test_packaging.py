"""The releasable package: one version, license, citation, changelog, build system, notebook
badge and install cell, one repository URL, README links inside the repository."""

import json
import os
import re
import subprocess

import tca_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts):
  with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
    return f.read()


def repository_files():
  try:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
  except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist)
    out = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT) for f in fs]
  return [f for f in out if f.endswith((".py", ".md", ".ipynb", ".cff", ".toml", ".sbatch",
                                        ".txt", ".ini", ".cfg"))
          and os.path.exists(os.path.join(ROOT, f))]


def setup_repository():
  return re.search(r'^REPOSITORY = "([^"]+)"', read("setup.py"), re.M).group(1)


def test_one_version_everywhere():
  version = tca_jax.__version__
  assert re.fullmatch(r"\d+\.\d+\.\d+", version)
  # setup.py reads it from tca_jax/__init__.py (the same regex as setup.py's).
  assert re.search(r'^__version__ = "([^"]+)"', read("tca_jax", "__init__.py"), re.M).group(1) \
      == version
  assert "version=VERSION" in read("setup.py") and "version=\"" not in read("setup.py")
  assert f'version: "{version}"' in read("CITATION.cff")
  assert f"\n## {version}\n" in read("CHANGELOG.md")


def test_license_citation_and_build_system():
  license_text = read("LICENSE")
  assert license_text.lstrip().startswith("Apache License")
  assert "Version 2.0, January 2004" in license_text
  assert "END OF TERMS AND CONDITIONS" in license_text
  assert len(license_text) > 10000  # the full text
  cff = read("CITATION.cff")
  for key in ("cff-version: 1.2.0", "message:", "title:", "authors:", "license: Apache-2.0"):
    assert key in cff
  assert f'repository-code: "{setup_repository()}"' in cff
  pyproject = read("pyproject.toml")
  assert "[build-system]" in pyproject and 'build-backend = "setuptools.build_meta"' in pyproject
  assert 'license="Apache-2.0"' in read("setup.py")


def test_no_placeholder_repository_and_one_url():
  placeholder = "OWN" + "ER"  # spelled apart so this file does not match itself
  hits = [f for f in repository_files() if placeholder in read(f)]
  assert not hits, hits
  url = setup_repository()
  nb = json.loads(read("notebooks", "quickstart.ipynb"))
  badge = "".join(nb["cells"][0]["source"])
  slug = url.split("github.com/")[1]
  assert ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/"
          "quickstart.ipynb)") in badge
  first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
  code = "".join(first_code["source"])
  assert code.count("REPO_URL = ") == 1 and f'REPO_URL = "{url}"' in code
  assert 'f"git+{REPO_URL}.git"' in code and "pip" in code


def test_readme_links_stay_inside_the_repository():
  readme = read("README.md")
  links = re.findall(r"\]\(([^)]+)\)", readme)
  assert links
  for link in links:
    assert "://" not in link and not link.startswith(("/", "..")), link
    assert os.path.exists(os.path.join(ROOT, link.split("#")[0])), link
  assert "../" not in readme  # no paths outside the checkout, linked or not
  # The two commands at the top stay as they are (CI runs them).
  assert ("pip install -e . && python -m experiments.train --config=experiments/configs/copy.py "
          "--workdir=runs/copy") in readme
  assert "pip install -e '.[test]' && python -m pytest -m \"not slow\" -n 2 -q" in readme
