"""Small helpers on ml_collections configs shared by the subsystems' config modules."""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections


def update_fields(cfg: ml_collections.ConfigDict, fields: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Set `fields` on `cfg` (in place, also returned); keys may be dotted ('augment.vflip')."""
    with cfg.unlocked():
        for key, value in fields.items():
            node = cfg
            *parents, leaf = key.split('.')
            for parent in parents:
                node = node[parent]
            node[leaf] = value
    return cfg
