#!/usr/bin/env python3
"""The module graph of src/, file by file, and a check that it has no circle.

An edge A -> B means that code in file A names an item of file B: through `use crate::…`,
`use super::…`, or a path written inline (`crate::actions::run::end_run(…)`). A path that
ends at a facade (a `mod.rs` that only declares its children and re-exports them) is
followed through the re-export to the child that defines the item. A parent's `mod x;`
and `pub use x::…` lines are containment, not use.

    python3 tools/modgraph.py          # exits 1 and prints each circle, if any
    python3 tools/modgraph.py --dot    # the graph of src/actions, for the README
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def module_of(path: Path) -> tuple:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


FILES = {module_of(p): p for p in SRC.rglob("*.rs")}


def strip(text: str) -> str:
    """The code without comments, strings and #[cfg(test)] modules."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", text)
    return text[: cut.start()] if cut else text


CODE = {m: strip(p.read_text()) for m, p in FILES.items()}


def reexports(module: tuple) -> dict:
    """Item name -> child module, for a facade's `pub use child::{…}` lines."""
    out = {}
    for m in re.finditer(r"pub use ([a-z_]+)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)\s*;", CODE.get(module, "")):
        child, names = m.group(1), m.group(2).strip("{}")
        for name in names.split(","):
            name = name.strip().split(" as ")[-1].strip()
            if name and module + (child,) in FILES:
                out[name] = module + (child,)
    return out


def resolve(path: list) -> tuple | None:
    """The file that defines the item at `path` (a list of segments from the crate root)."""
    best = None
    for i in range(len(path), 0, -1):
        if tuple(path[:i]) in FILES:
            best = i
            break
    if best is None:
        return None
    module = tuple(path[:best])
    rest = path[best:]
    while rest and rest[0] in reexports(module):
        module = reexports(module)[rest[0]]
        rest = rest[1:]
    return module


def paths_in(module: tuple) -> list:
    code = CODE[module]
    found = []
    # use trees: expand one level of braces.
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}\s*;", code):
        base = m.group(1).split("::")
        for item in re.split(r",\s*", m.group(2)):
            item = item.strip()
            if item:
                seg = re.split(r"::", item.split(" as ")[0].strip("{} "))
                found.append(base + [s for s in seg if s and s != "self"])
    for m in re.finditer(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
        found.append(m.group(1).split("::"))
    out = []
    for segs in found:
        if segs[0] == "crate":
            absolute = segs[1:]
        else:
            base = list(module)
            # `super` in a file `a/b.rs` (module a::b) is `a`; in `a/mod.rs` it is a's parent.
            is_facade = FILES[module].name == "mod.rs"
            if not is_facade:
                base = base[:-1] if segs[0] == "super" else base
            else:
                base = base[:-1] if segs[0] == "super" else base
            i = 0
            while i < len(segs) and segs[i] == "super":
                i += 1
            base = list(module)[: len(module) - i] if i else list(module)
            absolute = base + segs[i:]
        out.append(absolute)
    return out


def graph() -> dict:
    edges = {m: set() for m in FILES}
    for m in FILES:
        is_facade = FILES[m].name == "mod.rs"
        for path in paths_in(m):
            target = resolve(path)
            if target is None or target == m or not target:
                continue
            # A facade's own re-exports of its children are containment.
            if is_facade and target[: len(m)] == m:
                continue
            edges[m].add(target)
    return edges


def circles(edges: dict) -> list:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                out.append(comp)

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m: tuple) -> str:
    return "::".join(m) or "crate"


def main() -> int:
    edges = graph()
    if "--dot" in sys.argv:
        top = lambda m: m[:2] if m[:1] == ("actions",) else m[:1]
        coarse = {}
        for a, bs in edges.items():
            for b in bs:
                if top(a) != top(b) and top(a)[:1] == ("actions",) and top(b)[:1] == ("actions",):
                    coarse.setdefault(name(top(a)), set()).add(name(top(b)))
        for a in sorted(coarse):
            print(f"{a} -> {', '.join(sorted(coarse[a]))}")
        return 0
    found = circles(edges)
    for comp in found:
        print("import circle:", " <-> ".join(sorted(name(m) for m in comp)))
    n_edges = sum(len(b) for b in edges.values())
    print(f"modgraph: {len(edges)} modules, {n_edges} edges, {len(found)} circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
