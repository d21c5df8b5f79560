"""The firmware's import graph, checked: no cycle, no private name across modules, downward only.

    python tools/layering.py [--graph]

Walks every module of ``firmware/optoread`` (and the entry points ``firmware/main.py`` and
``firmware/unix_read.py``) with :mod:`ast`, taking every import: at module level, inside
functions (a lazy load), and loading by name (``__import__``, ``importlib``, ``sys.modules``).
It reports, one line each:

* an import cycle (lazy imports count: a cycle through a function-level import is one too);
* a name starting with ``_`` imported from another firmware module (what two modules share
  lives in a lower module both import, under a public name);
* a function-level import of a firmware module that its package does not declare in the
  ``LAZY`` tuple of its ``__init__.py`` (the one place a package lists the whole features it loads
  on first use), or a ``LAZY`` entry that names no module;
* loading a firmware module by name (``__import__``, ``importlib``, ``sys.modules[...]``);
  ``compat.unload``, which only *drops* modules from ``sys.modules``, is the one exception;
* an import that goes upward in the layer table of ``docs/architecture.md`` (the fenced block
  after "## Layers": one line per layer, top first, ``name  pattern, pattern  ...`` where a
  pattern is a dotted module name below ``optoread`` or ``pkg.*``); every module must fall in
  a layer.

Exit status 0 when there is nothing to report. ``--graph`` prints the edges.
"""

import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "optoread"
ENTRY_POINTS = ("main", "unix_read")  # firmware/*.py: the top of the graph
UNLOAD_ONLY = {"optoread.compat"}  # may touch sys.modules: it drops modules, never loads one


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
                if arg is None or arg.startswith(PKG):
                    problems.append("%s line %d: loads a module by name (%s)"
                                    % (name, node.lineno, arg or "computed name"))
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and \
                isinstance(node.value, ast.Name) and node.value.id == "sys" and name not in UNLOAD_ONLY:
            problems.append("%s line %d: reaches into sys.modules" % (name, node.lineno))
    return edges, problems


def lazy_declarations(mods):
    """``{package: set of dotted module names}`` from each package's ``LAZY`` tuple."""
    out = {}
    for name, path in mods.items():
        if not _is_package(name, mods):
            continue
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        decl = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LAZY"
                                                    for t in node.targets):
                for elt in getattr(node.value, "elts", ()):
                    if _const_str(elt):
                        decl.add(name + "." + elt.value)
        out[name] = decl
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
    with open(os.path.join(root, "docs", "architecture.md")) as f:
        text = f.read()
    i = text.find(_LAYER_HEAD)
    if i < 0:
        raise SystemExit("docs/architecture.md has no %r section" % _LAYER_HEAD)
    m = re.search(r"```[^\n]*\n(.*?)```", text[i:], re.S)
    out = []
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        cols = re.split(r"\s{2,}", line.strip())
        out.append((cols[0], [p.strip() for p in cols[1].split(",") if p.strip()]))
    return out


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
    declared = lazy_declarations(mods)
    for pkg, names in sorted(declared.items()):
        for n in sorted(names):
            if n not in mods:
                problems.append("%s: LAZY names %s, which is not a module" % (pkg, n))
    for e in edges:
        if e.lazy and e.dst in mods and not _is_package(e.dst, mods):
            pkg = e.dst.rpartition(".")[0]
            if e.dst not in declared.get(pkg, ()):
                problems.append("%s line %d: loads %s inside a function, but %s does not declare it in LAZY"
                                % (e.src, e.line, e.dst, pkg))
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
