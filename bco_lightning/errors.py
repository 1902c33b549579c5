"""Every error the package reports as one line (no traceback), in one place.

Library code says what was wrong in its own terms: a setting is named between backticks
(`SettingError("`alpha` must be >= 0, got -1")`), and `str(error)` shows the plain name. The `bco`
command turns each such name into its flag (`--alpha`, `--data.batch_size`) when it prints it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

SETTING_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class BCOError(Exception):
    """Base of the errors that end a `bco` command with one line on stderr and exit status 2."""


class ConfigError(BCOError, ValueError):
    """A configuration the pipeline cannot run; the message says what was wrong and what is expected."""


class SettingError(ConfigError):
    """A setting with a value that cannot work. Settings are named between backticks in the message;
    `owner` is the class whose argument they are (None: the run's own settings), so that a
    command line can tell `idm.lr` from `policy.lr`."""

    def __init__(self, message: str, owner: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.owner = owner

    def settings(self) -> list[str]:
        """The setting names the message mentions, in order."""
        return SETTING_NAME.findall(self.message)

    def describe(self, name_of: Callable[[str], str]) -> str:
        """The message with every setting written as `name_of(setting)` (a flag, say)."""
        return SETTING_NAME.sub(lambda match: name_of(match.group(1)), self.message)

    def __str__(self) -> str:
        return self.describe(lambda name: name)


class OutputExistsError(SettingError, FileExistsError):
    """An output file exists and replacing it was not asked for: nothing the user had is lost."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"{path} exists; set `overwrite` to true to replace it, or write elsewhere")
        self.path = Path(path)


def refuse_to_overwrite(path: str | Path, overwrite: bool) -> None:
    """The one check before writing an output: an existing `path` is replaced only if `overwrite`."""
    if not overwrite and Path(path).exists():
        raise OutputExistsError(path)


class ExpertFileError(BCOError, ValueError):
    """An expert state file (or dataset) that breaks the format; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class RolloutError(BCOError, RuntimeError):
    """The environment misbehaved during a rollout (raised, or returned non-finite observations)."""


class RenderError(BCOError, RuntimeError):
    """The environment cannot render the frames a video needs."""
