"""The firmware's import graph, checked: no cycle, no private name across modules, downward only.

    python tools/layering.py [--graph]

Walks every module of ``firmware/optoread`` (and the entry points ``firmware/main.py`` and
``firmware/unix_read.py``) with :mod:`ast`, taking every import: at module level, inside
functions (a lazy load), and loading by name (``__import__``, ``importlib``, ``sys.modules``).
It reports, one line each:

* an import cycle (lazy imports count: a cycle through a function-level import is one too);
* a name starting with ``_`` imported from another firmware module (what two modules share
  lives in a lower module both import, under a public name);
* a function-level import of a firmware module that is not declared in the "## Loaded on first
  use" block of ``docs/architecture.md`` (one line per package: the package, then the modules of
  it that are loaded by the first call needing them: the one place a package lists the whole
  features it loads on first use), or a declaration that names no module;
* loading a firmware module by name (``__import__``, ``importlib``, ``sys.modules[...]``);
  ``compat.unload``, which only *drops* modules from ``sys.modules``, and ``unix_read``'s list of
  the loaded modules are the exceptions (an entry point may load the board file by name);
* an import that goes upward in the layer table of ``docs/architecture.md`` (the fenced block
  after "## Layers": one line per layer, top first, ``name  pattern, pattern  ...`` where a
  pattern is a dotted module name below ``optoread`` or ``pkg.*``); every module must fall in
  a layer.

Both tables live in the architecture page rather than in code: a tuple of names in a package's
``__init__.py`` would intern those names on the board at boot (RAM), and the subpackages have
no ``__init__.py`` at all (namespace packages: no module, no file name to keep on the heap).

Exit status 0 when there is nothing to report. ``--graph`` prints the edges.
"""

import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "optoread"
ENTRY_POINTS = ("main", "unix_read")  # firmware/*.py: the top of the graph
# May touch sys.modules: compat.unload drops modules, never loads one; unix_read lists the loaded
# modules (--modules).
SYS_MODULES_OK = {"optoread.compat", "unix_read"}


class Edge:
    __slots__ = ("src", "dst", "name", "lazy", "line")

    def __init__(self, src, dst, name, lazy, line):
        self.src, self.dst, self.name, self.lazy, self.line = src, dst, name, lazy, line

    def __repr__(self):
        return "%s -> %s%s (line %d)" % (self.src, self.dst, " [lazy]" if self.lazy else "", self.line)


def modules(root=ROOT):
    """``{dotted name: path}`` of the firmware package's modules and the entry points."""
    base = os.path.join(root, "firmware", PKG)
    out = {}
    for d, dirs, files in os.walk(base):
        dirs[:] = sorted(x for x in dirs if not x.startswith((".", "__")))
        rel = os.path.relpath(d, base)
        prefix = PKG if rel == "." else PKG + "." + rel.replace(os.sep, ".")
        for n in files:
            if n.endswith(".py"):
                out[prefix if n == "__init__.py" else prefix + "." + n[:-3]] = os.path.join(d, n)
    for e in ENTRY_POINTS:
        p = os.path.join(root, "firmware", e + ".py")
        if os.path.exists(p):
            out[e] = p
    return out


def _is_package(name, mods):
    return mods.get(name, "").endswith("__init__.py")


def _packages(mods):
    """Dotted names of the packages (``optoread``, ``optoread.dlms``, ...), with or without an
    ``__init__.py``: every prefix of a firmware module's name."""
    out = set()
    for name in mods:
        if name.startswith(PKG):
            parts = name.split(".")
            out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return out


def _resolve(src, level, module, mods):
    """The absolute module an ImportFrom in ``src`` names (relative imports resolved)."""
    if not level:
        return module
    base = src if _is_package(src, mods) else src.rpartition(".")[0]
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return base + ("." + module if module else "")


def _in_function(stack):
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) for n in stack)


def _walk(tree):
    """Every node with its ancestors."""
    todo = [(tree, ())]
    while todo:
        node, stack = todo.pop()
        yield node, stack
        for child in ast.iter_child_nodes(node):
            todo.append((child, stack + (node,)))


def _const_str(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def scan(name, path, mods):
    """(edges, problems) of one module."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    edges, problems = [], []
    for node, stack in _walk(tree):
        lazy = _in_function(stack)
        if isinstance(node, ast.ImportFrom):
            target = _resolve(name, node.level, node.module, mods)
            if not target or not (target == PKG or target.startswith(PKG + ".")):
                continue
            for a in node.names:
                sub = target + "." + a.name
                if sub in mods:  # from optoread.dlms import axdr: the submodule
                    edges.append(Edge(name, sub, a.name, lazy, node.lineno))
                    continue
                if target not in mods:
                    problems.append("%s line %d: imports %s from %s, which is not a firmware module"
                                    % (name, node.lineno, a.name, target))
                    continue
                edges.append(Edge(name, target, a.name, lazy, node.lineno))
                if a.name.startswith("_") and not (a.name.startswith("__") and a.name.endswith("__")):
                    problems.append("%s line %d: private name %s imported from %s"
                                    % (name, node.lineno, a.name, target))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == PKG or a.name.startswith(PKG + "."):
                    edges.append(Edge(name, a.name, None, lazy, node.lineno))
        elif isinstance(node, ast.Call):
            f = node.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if fname in ("__import__", "import_module"):
                arg = _const_str(node.args[0]) if node.args else None
                # An entry point loads the board file by its computed name (boards/NAME.py).
                if (arg is None and name not in ENTRY_POINTS) or (arg or "").startswith(PKG):
                    problems.append("%s line %d: loads a module by name (%s)"
                                    % (name, node.lineno, arg or "computed name"))
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and \
                isinstance(node.value, ast.Name) and node.value.id == "sys" and name not in SYS_MODULES_OK:
            problems.append("%s line %d: reaches into sys.modules" % (name, node.lineno))
    return edges, problems


def _doc_block(root, head):
    with open(os.path.join(root, "docs", "architecture.md")) as f:
        text = f.read()
    i = text.find(head)
    if i < 0:
        raise SystemExit("docs/architecture.md has no %r section" % head)
    m = re.search(r"```[^\n]*\n(.*?)```", text[i:], re.S)
    return [re.split(r"\s{2,}", ln.strip()) for ln in m.group(1).splitlines() if ln.strip()]


_LAZY_HEAD = "## Loaded on first use"


def lazy_declarations(root=ROOT):
    """``{package: set of dotted module names}`` from docs/architecture.md's "Loaded on first use"
    block: each line a package (``dlms.client``; ``optoread`` for the top) and its modules."""
    out = {}
    for cols in _doc_block(root, _LAZY_HEAD):
        pkg = PKG if cols[0] == PKG else PKG + "." + cols[0]
        out[pkg] = {pkg + "." + n.strip() for n in cols[1].split(",") if n.strip()}
    return out


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph = {}
    for e in edges:
        if e.src != e.dst:
            graph.setdefault(e.src, set()).add(e.dst)
            graph.setdefault(e.dst, set())
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


_LAYER_HEAD = "## Layers"


def layers(root=ROOT):
    """``[(layer name, [patterns])]`` from docs/architecture.md, top layer first."""
    return [(cols[0], [p.strip() for p in cols[1].split(",") if p.strip()])
            for cols in _doc_block(root, _LAYER_HEAD)]


def layer_of(name, table):
    """Index of the layer that holds module ``name`` (0 = top), or None."""
    short = name[len(PKG) + 1:] if name.startswith(PKG + ".") else name
    for i, (_layer, patterns) in enumerate(table):
        for p in patterns:
            if p == short or (p.endswith(".*") and (short == p[:-2] or short.startswith(p[:-1]))):
                return i
    return None


def check(root=ROOT):
    """Every problem, as one-line strings (empty: the firmware's imports are in order)."""
    mods = modules(root)
    edges, problems = [], []
    for name in sorted(mods):
        e, p = scan(name, mods[name], mods)
        edges += e
        problems += p
    declared = lazy_declarations(root)
    packages = _packages(mods)
    for pkg, names in sorted(declared.items()):
        if pkg not in packages:
            problems.append("docs/architecture.md: %s (loaded on first use) is not a package" % pkg)
        for n in sorted(names):
            if n not in mods:
                problems.append("docs/architecture.md: %s (loaded on first use) is not a module" % n)
    for e in edges:
        if e.lazy and e.dst in mods and not _is_package(e.dst, mods):
            pkg = e.dst.rpartition(".")[0]
            if e.dst not in declared.get(pkg, ()):
                problems.append("%s line %d: loads %s inside a function, but docs/architecture.md does not "
                                "declare it loaded on first use" % (e.src, e.line, e.dst))
    for comp in cycles(edges):
        problems.append("import cycle: %s" % " <-> ".join(comp))
    table = layers(root)
    for name in sorted(mods):
        if name not in ENTRY_POINTS and not _is_package(name, mods) and layer_of(name, table) is None:
            problems.append("%s is in no layer of docs/architecture.md" % name)
    for e in edges:
        a, b = layer_of(e.src, table), layer_of(e.dst, table)
        if a is not None and b is not None and b < a:
            problems.append("%s line %d: imports %s, a layer above it (%s over %s)"
                            % (e.src, e.line, e.dst, table[b][0], table[a][0]))
    return problems


def main(argv):
    if "--graph" in argv:
        mods = modules()
        for name in sorted(mods):
            for e in scan(name, mods[name], mods)[0]:
                print(e)
    problems = check()
    for p in problems:
        print(p)
    print("layering: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
