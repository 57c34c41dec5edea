"""ws-runbook: Jupyter incident runbooks for WebSocket disconnects.

Layers (imports point one way, see DESIGN.md):
``cli`` -> ``steps`` -> ``report``, ``diagnosis``, ``probes``, ``lab`` -> ``logs``, ``configs``,
``observations``.
"""

from runbook.errors import ParameterError, RunbookError

__version__ = "0.1.0"
__all__ = ["ParameterError", "RunbookError", "__version__"]
