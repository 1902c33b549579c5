"""The configs and demonstrations that ship inside the package, found with `importlib.resources`.

A user's own file always wins: a shipped one stands in only where the path given does not exist,
so `bco run --config cartpole.yaml` and `--data.expert_path data/CartPole-v1.npz` work from any
folder, in a checkout or an installed wheel alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SHIPPED_DATA_PREFIX = "data"
"""Expert paths `data/NAME.npz` name a shipped demonstration when no such local file exists."""


def shipped_dir(kind: str) -> Path:
    """The folder of shipped `configs` or `demonstrations` (a real folder: the package is never zipped)."""
    return Path(str(files("bco_lightning").joinpath(kind)))


def shipped_configs() -> dict[str, Path]:
    """Every shipped config by name (`cartpole` for `configs/cartpole.yaml`)."""
    return {path.stem: path for path in sorted(shipped_dir("configs").glob("*.yaml"))}


def resolve_config_path(path: str) -> Path:
    """`path` if it exists; else the shipped config of that file name (`cartpole.yaml` or
    `configs/cartpole.yaml`); else `path` itself, for the caller to report as missing."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    shipped = shipped_dir("configs") / given.name
    if given.suffix in (".yaml", ".yml") and given.parent in (Path("."), Path("configs")) and shipped.is_file():
        return shipped
    return given


def resolve_expert_path(expert_path: str) -> Path:
    """`expert_path` if it exists; else, for `data/NAME`, the shipped demonstration NAME."""
    given = Path(expert_path)
    if given.exists() or given.is_absolute() or given.parts[:1] != (SHIPPED_DATA_PREFIX,):
        return given
    shipped = shipped_dir("demonstrations").joinpath(*given.parts[1:])
    return shipped if shipped.is_file() else given
