"""One controller per resource."""

from l1.api.controllers.cache import CacheController
from l1.api.controllers.dead_letters import DeadLetterController
from l1.api.controllers.info import InfoController
from l1.api.controllers.recipes import EffectController, RecipeController
from l1.api.controllers.runs import RunController

__all__ = [
    "CacheController",
    "DeadLetterController",
    "EffectController",
    "InfoController",
    "RecipeController",
    "RunController",
]
