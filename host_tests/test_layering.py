"""The firmware's import graph (tools/layering.py): no cycle, no private import across modules,
lazy loads declared per package and imports downward, both by docs/architecture.md (CPython).

The checker itself is tested on small trees built here, one fault each.
"""

import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import layering  # noqa: E402

LAYERS = """# x

## Layers

```
device      device.*         the reader
dlms        dlms.*           protocols
shared      compat, errors   leaves
```

## Loaded on first use

```
dlms        %s               rare
```
"""


def _tree(tmp_path, files, lazy="b"):
    for rel, text in files.items():
        p = tmp_path / "firmware" / "optoread" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "architecture.md").write_text(LAYERS % lazy)
    return str(tmp_path)


BASE = {
    "__init__.py": "",
    "compat.py": "def const(x):\n    return x\n",
    "errors.py": "class OptoreadError(Exception):\n    pass\n",
    "dlms/a.py": "from optoread.compat import const\n\n\ndef f():\n    from optoread.dlms import b\n"
                 "    return b\n",
    "dlms/b.py": "from optoread import errors\n",
    "device/reader.py": "from optoread.dlms import a\n",
}


def test_the_firmware_has_no_cycle_no_private_import_and_imports_downward():
    problems = layering.check(ROOT)
    assert problems == [], "\n".join(problems)


def test_every_firmware_module_is_in_a_layer_and_the_table_is_ordered():
    table = layering.layers(ROOT)
    names = [n for n, _ in table]
    assert names[0] == "device" and names[-1] == "shared"
    for name in layering.modules(ROOT):
        if name not in layering.ENTRY_POINTS and not layering.modules(ROOT)[name].endswith("__init__.py"):
            assert layering.layer_of(name, table) is not None, name


def test_a_clean_tree_passes(tmp_path):
    assert layering.check(_tree(tmp_path, BASE)) == []


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    files = dict(BASE, **{"dlms/b.py": "def g():\n    from optoread.dlms import a\n"})
    problems = layering.check(_tree(tmp_path, files, lazy="a, b"))
    assert "import cycle: optoread.dlms.a <-> optoread.dlms.b" in problems


def test_a_private_name_from_another_module_is_found(tmp_path):
    files = dict(BASE, **{"dlms/b.py": "from optoread.compat import _hidden\n"})
    problems = layering.check(_tree(tmp_path, files))
    assert any("private name _hidden imported from optoread.compat" in p for p in problems), problems


def test_an_undeclared_lazy_import_is_found(tmp_path):
    problems = layering.check(_tree(tmp_path, BASE, lazy="c"))
    assert any("loads optoread.dlms.b inside a function, but docs/architecture.md does not declare it" in p
               for p in problems), problems
    assert "docs/architecture.md: optoread.dlms.c (loaded on first use) is not a module" in problems


def test_loading_by_name_is_found(tmp_path):
    files = dict(BASE, **{"dlms/b.py": "import sys\n\ndef g(n):\n    return __import__('optoread.' + n)\n\n"
                                       "def h():\n    return sys.modules['optoread.dlms.a']\n"})
    problems = layering.check(_tree(tmp_path, files))
    assert any("loads a module by name (computed name)" in p for p in problems), problems
    assert any("reaches into sys.modules" in p for p in problems), problems


def test_an_upward_import_is_found(tmp_path):
    files = dict(BASE, **{"dlms/b.py": "from optoread.device import reader\n"})
    problems = layering.check(_tree(tmp_path, files))
    assert any("optoread.dlms.b line 1: imports optoread.device.reader, a layer above it" in p
               for p in problems), problems


def test_a_module_outside_the_layers_is_found(tmp_path):
    files = dict(BASE, **{"store/log.py": "from optoread import errors\n"})
    problems = layering.check(_tree(tmp_path, files))
    assert "optoread.store.log is in no layer of docs/architecture.md" in problems
