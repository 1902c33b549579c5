"""bco-lightning: Behavioral Cloning from Observation (BCO, BCO(alpha)) as PyTorch Lightning modules.

Learn a policy from state-only demonstrations (what an expert's environment looked like, with no
record of its actions) and a gymnasium environment to interact with:

- `BCODataModule` owns the data: the expert file, the interaction it collects, splits and labels
  (`RandomPlay` says how its pre-demonstration interaction plays).
- `IDMModule` learns the inverse dynamics `p(a | s, s')` that labels the demonstrations.
- `BCPolicyModule` clones the labelled demonstrations into a policy `pi(a | s)`.
- `EnvEvaluationCallback` evaluates a policy in the environment when its fit ends.
- `BCORun` with `RunSettings` runs the whole BCO(alpha) loop, as `bco run` does.

See `examples/python_api.py` for BCO(0) with plain Lightning Trainers.
"""

from bco_lightning.callbacks import EnvEvaluationCallback, FitNormalizers, normalized_score
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.data.expert_file import ExpertDemonstrations, load_expert_file, save_expert_file
from bco_lightning.data.rollouts import RandomPlay
from bco_lightning.errors import BCOError, ConfigError, ExpertFileError, RenderError, RolloutError, SettingError
from bco_lightning.export import export_policy
from bco_lightning.idm import IDMModule
from bco_lightning.pipeline import BCORun, RunSettings
from bco_lightning.policy import BCPolicyModule

__version__ = "0.2.0"

__all__ = [
    "BCODataModule",
    "BCOError",
    "BCORun",
    "BCPolicyModule",
    "ConfigError",
    "EnvEvaluationCallback",
    "ExpertDemonstrations",
    "ExpertFileError",
    "FitNormalizers",
    "IDMModule",
    "RandomPlay",
    "RenderError",
    "RolloutError",
    "RunSettings",
    "SettingError",
    "__version__",
    "export_policy",
    "load_expert_file",
    "normalized_score",
    "save_expert_file",
]
