"""Plain Python values for YAML / JSON metadata (one helper shared by the ASDF writers)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plain_python"]


def plain_python(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python scalars and containers as dicts / lists.

    Dict keys become strings and tuples become lists (what YAML and JSON write back); other
    values, arrays included, are returned as they are.

    Examples
    --------
    >>> import numpy as np
    >>> plain_python({"a": np.float64(1.5), 2: (np.int64(3), "x")})
    {'a': 1.5, '2': [3, 'x']}
    """
    if isinstance(obj, dict):
        return {str(k): plain_python(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain_python(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
