"""Sphinx configuration: the jsoftmax documentation site.

Build (warnings are errors) and run the code examples:

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest
"""

import doctest
import os
import sys

# The doctests run with the test suite's devices and precision (../conftest.py):
# 8 host CPU devices (a sharding example builds a Mesh of two) and float64. Rank
# promotion stays at jax's default, as for a user (distrax's samplers broadcast
# by rank). XLA_FLAGS must be set before jax is first imported.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))  # bench_tables: tables from bench/results

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jsoftmax  # noqa: E402

project = "jsoftmax"
author = "The jsoftmax authors"
copyright = "The jsoftmax authors"
release = jsoftmax.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "bench_tables",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# MyST: $...$ and $$...$$ math, ::: fences, tables as in the README.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Docstrings are Google style (Args, Returns, Example, References), as optax.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures carry the defaults; Args say the types

# Every cross-reference must resolve (with -W a broken one fails the build),
# except those to jax and optax: their inventories would need the network, so
# those render as code without a link.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(jax|optax)\..*")]

# Every code example runs: `sphinx-build -b doctest` runs the pages' doctest blocks
# under the settings above. The docstrings' `>>>` examples (the API page) are
# pytest's doctests (`pytest` collects jsoftmax/ with --doctest-modules, in CI
# too); running them again here would double this build's time for no new check.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import jax
import jax.numpy as jnp
import numpy as np
import jsoftmax
jnp.set_printoptions(precision=4)
"""
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)

html_theme = "furo"
html_title = f"jsoftmax {release}"
html_static_path = ["_static"]
