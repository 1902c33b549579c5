"""The documentation stays true: docs/cli.md is what the parsers say, and README.md and docs/*.md
cite only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bco_lightning.cli_reference import REGENERATE, render_cli_reference
from helpers import REPO_ROOT, SHIPPED_CONFIGS, SHIPPED_DEMONSTRATIONS

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_cli_reference_is_current() -> None:
    page = REPO_ROOT / "docs" / "cli.md"
    assert page.is_file(), f"docs/cli.md is missing; make it with `{REGENERATE}`"
    assert page.read_text() == render_cli_reference(), f"docs/cli.md is out of date with bco_lightning/cli.py; regenerate it with `{REGENERATE}`"


FENCED_BLOCK = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)  # also inside list items
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
PATH_SUFFIXES = (".py", ".md", ".yaml", ".npz", ".sh", ".png", ".json", ".toml")
PACKAGE_SOURCE = "\n".join(path.read_text() for path in sorted((REPO_ROOT / "bco_lightning").rglob("*.py")))


def looks_like_a_path(token: str) -> bool:
    if not token or any(c in token for c in " *<") or token.startswith(("-", "http", "~", "/")):
        return False  # `~/...` and `/...` are places on the user's machine, not in the repository
    if re.fullmatch(r"\.\w+", token):  # an extension named on its own (`.npz`), not a file
        return False
    return "/" in token or token.endswith(PATH_SUFFIXES)


def stands_for_an_existing_file(token: str) -> bool:
    """Exists relative to the repository root, or is one of the few kinds below.

    The allow-list: names the docs rightly give that are no file of the repository, because the
    package resolves them to a shipped file, a run makes them, or they are not files at all.
      - `data/NAME` names the shipped demonstration NAME (`bco_lightning.resources.resolve_expert_path`);
      - `configs/NAME.yaml` and `NAME.yaml` name the shipped config (`resolve_config_path`);
      - `lightning_logs/...` and `benchmarks/runs/...` are folders a run or a benchmark writes (git-ignored);
      - a name the package's source spells as a string literal: a TensorBoard tag (`eval/video`, no
        suffix) or a file it writes into each run folder (`config.yaml`, `summary.json`, no folder).
    """
    path = token.rstrip("/").split("#")[0]
    if (REPO_ROOT / path).exists():
        return True
    parts = Path(path).parts
    if parts[:1] == ("data",) and len(parts) > 1:
        return SHIPPED_DEMONSTRATIONS.joinpath(*parts[1:]).exists()
    if path.endswith(".yaml") and (len(parts) == 1 or parts[:1] == ("configs",) and len(parts) == 2):
        if (SHIPPED_CONFIGS / parts[-1]).is_file():
            return True
    if parts[:1] == ("lightning_logs",) or parts[:2] == ("benchmarks", "runs"):
        return True
    is_tag = re.fullmatch(r"\w+(/\w+)+", token) is not None  # `eval/video`, not `configs/`
    is_run_file = re.fullmatch(r"\w+\.(json|yaml)", token) is not None  # `config.yaml`, not `idm.py`
    return (is_tag or is_run_file) and f'"{token}"' in PACKAGE_SOURCE


def missing_citations(page: Path) -> list[str]:
    text = page.read_text()
    missing = []
    for match in LINK.finditer(text):  # links resolve against the page's own folder, as on GitHub
        target = match.group(1).split("#")[0]
        if target and not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not (page.parent / target).exists():
            missing.append(f"link ({match.group(1)})")
    prose = FENCED_BLOCK.sub("", text)
    for match in CODE_SPAN.finditer(prose):
        token = match.group(2).strip()
        if looks_like_a_path(token) and not stands_for_an_existing_file(token):
            missing.append(f"`{token}`")
    return list(dict.fromkeys(missing))


def test_the_citation_check_tells_repository_paths_from_prose() -> None:
    assert looks_like_a_path("bco_lightning/cli.py") and looks_like_a_path("idm.py") and looks_like_a_path("configs/")
    for prose in (".npz", "--data.expert_path", "https://example.org/a.md", "bco run --config x.yaml", "~/.minari", "s/*.npz", "<env_id>/x"):
        assert not looks_like_a_path(prose), prose
    for cited in ("bco_lightning/cli.py", "data/CartPole-v1.npz", "configs/cartpole.yaml", "cartpole.yaml",
                  "lightning_logs/CartPole-v1/version_0", "eval/video", "summary.json"):
        assert stands_for_an_existing_file(cited), cited
    for stale in ("data/HalfCheetah-v5-sac.zip", "configs/atlantis.yaml", "configs/", "idm.py", "eval/nothing", "nothing.json"):
        assert not stands_for_an_existing_file(stale), stale


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_docs_cite_existing_files(page: Path) -> None:
    missing = missing_citations(page)
    assert not missing, f"{page.relative_to(REPO_ROOT)} cites files that do not exist: {', '.join(missing)}"
