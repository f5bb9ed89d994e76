"""Admin of prompt versions, experiments (life cycle, comparison page) and eval runs."""

from .evals import EvalRunAdmin
from .experiments import ExperimentAdmin
from .prompts import PromptVersionAdmin

__all__ = ["EvalRunAdmin", "ExperimentAdmin", "PromptVersionAdmin"]
