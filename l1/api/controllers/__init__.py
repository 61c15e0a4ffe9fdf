"""One controller per resource."""

from l1.api.controllers.cache import CacheController
from l1.api.controllers.info import InfoController
from l1.api.controllers.runs import RunController

__all__ = ["CacheController", "InfoController", "RunController"]
