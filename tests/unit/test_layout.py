"""Dependencies run one way, down the pipeline: behaviour -> profiles -> features -> learn -> rerank (-> serve).

Read from the source (every ``import``, also those inside functions), so a lazy import cannot hide a wrong
direction. Each rule names the stage and what it must never import, with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fuserec_os"

# stage -> (stages it must not import, why)
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "engine": (
        ("index", "search", "behaviour", "profiles", "features", "learn", "rerank", "serve", "simulate", "commands"),
        "connections know nothing of what is stored",
    ),
    "index": (
        ("search", "behaviour", "profiles", "features", "learn", "rerank", "serve", "simulate", "commands"),
        "the catalog and index lifecycle come before any behaviour",
    ),
    "behaviour": (
        ("profiles", "features", "learn", "rerank", "serve", "simulate", "commands"),
        "logs are the first stage: everything reads them, they read nothing downstream",
    ),
    "profiles": (
        ("features", "learn", "rerank", "serve", "simulate", "commands"),
        "profiles and statistics are computed from behaviour only",
    ),
    "features": (
        ("learn", "rerank", "serve", "simulate", "commands"),
        "one feature code path for training and serving: it cannot depend on either side",
    ),
    "learn": (("serve", "simulate", "commands"), "training takes the oracle as an argument, never the simulator"),
    "rerank": (("learn", "serve", "simulate", "commands"), "serving loads models without the trainer"),
    "serve": (("learn", "simulate", "commands"), "the request path never loads the trainer or the simulator"),
    "search": (
        ("behaviour", "profiles", "features", "learn", "serve", "simulate", "commands"),
        "retrieval is below personalization: the backend calls the rerank stage through its injected "
        "Personalizer (only SearchBackend.from_env wires rerank.pipeline, lazily)",
    ),
    "simulate": (("learn", "commands"), "the simulator stands in for a shop, not for our training"),
    "experiments": (
        ("profiles", "features", "learn", "rerank", "serve", "simulate", "commands"),
        "experiments read the logs and are called by the proxy: they never load the model or the trainer",
    ),
}


def _imports(path: Path) -> set[str]:
    """Every fuserec_os module ``path`` imports, at any depth of the file (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fuserec_os"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fuserec_os"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # 'from fuserec_os import learn'
    return found


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _violations(stage: str) -> list[str]:
    forbidden, _ = RULES[stage]
    out = []
    for path in sorted((PACKAGE / stage).rglob("*.py")):
        for module in sorted(_imports(path)):
            if _stage_of(module) in forbidden:
                out.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    return out


@pytest.mark.parametrize("stage", sorted(RULES))
def test_stage_imports_only_upstream(stage: str) -> None:
    if not (PACKAGE / stage).is_dir():
        assert stage == "serve", f"fuserec_os/{stage}/ is gone: update RULES"
        return
    assert _violations(stage) == [], f"{stage}/ must not import downstream ({RULES[stage][1]})"


def test_search_reaches_the_rerank_stage_only_inside_from_env() -> None:
    """The one composition root: a module-level import of rerank/ would load pandas into every plain search."""

    def rerank_imports(node: ast.AST) -> set[str]:
        return {
            n.module
            for n in ast.walk(node)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("fuserec_os.rerank")
        }

    anywhere: dict[str, set[str]] = {}
    in_from_env: set[str] = set()
    for path in sorted((PACKAGE / "search").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if found := rerank_imports(tree):
            anywhere[path.name] = found
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef) and fn.name == "from_env":
                in_from_env |= rerank_imports(fn)
    assert anywhere == {"backend.py": {"fuserec_os.rerank.pipeline"}}, anywhere
    assert in_from_env == {"fuserec_os.rerank.pipeline"}


def test_nothing_but_the_cli_imports_the_commands() -> None:
    offenders = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.parent.name != "commands"
        and p.name not in ("cli.py", "__main__.py")
        and any(_stage_of(m) == "commands" for m in _imports(p))
    ]
    assert offenders == []


def test_the_rule_sees_a_lazy_import(tmp_path: Path) -> None:
    """The check can fail: an import inside a function is found like one at the top."""
    f = tmp_path / "x.py"
    f.write_text("def oracle():\n    from fuserec_os.simulate.shoppers import load_truth\n    return load_truth\n")
    assert "fuserec_os.simulate.shoppers" in _imports(f)


def test_every_package_says_what_it_holds_in_its_docstring() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(PACKAGE.parent)} needs a one-line docstring: the map of its folder"
