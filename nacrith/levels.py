"""Compression levels: ``--fast``, the default and ``--best``, as zstd and xz users expect.

A level is a named preset of the model and the :class:`~nacrith.codec.Layout`; every setting
it chooses is recorded in the archive by its own header key, and the level's number too
(container v2 key 17, informative: ``nacrith info`` shows it).  Options given beside a level
override its settings (``--best --window 4096``), and the archive still says which level they
started from.  Measurements behind each choice: docs/results.md, "Levels".
"""

from __future__ import annotations

from dataclasses import dataclass

from . import container
from .codec import Layout
from .ensemble import LLM_ONLY


@dataclass(frozen=True)
class Level:
    """One compression level: a model preset (None: ``$NACRITH_MODEL``, else the default
    model) and the layout archives are written with.  A level's model must be installed
    (``--best`` needs ``sh native/install.sh gemma``): a missing one is a ModelNotFoundError
    that says how to install it, never a quiet change of model."""

    name: str
    model: str | None
    layout: Layout
    #: What it mixes and why, for ``--help`` and the README.
    summary: str

    @property
    def number(self) -> int:
        return self.layout.level


FAST = Level(
    "fast",
    None,
    Layout(window=256, slide=64, ensemble=LLM_ONLY, level=container.LEVEL_FAST),
    "the LLM alone in a 256-token window, no online models: the quickest, several % larger",
)
DEFAULT = Level(
    "default",
    None,
    Layout(),
    "the LLM in a 1024-token window mixed with the online n-gram, match, bias and APM models; "
    "8 segments decoded side by side",
)
BEST = Level(
    "best",
    "gemma3-270m",
    Layout(window=2048, slide=512, segments=1, level=container.LEVEL_BEST),
    "gemma3-270m (twice SmolLM2's size, a better predictor) with the default's online models in "
    "a 2048-token window, coded in lockstep, each stream one sequence: the smallest, several times slower",
)

LEVELS: dict[str, Level] = {level.name: level for level in (FAST, DEFAULT, BEST)}
NAMES = tuple(LEVELS)


def get(level: str | Level | None) -> Level:
    """The level named ``level`` (None: the default); ValueError for an unknown name."""
    if level is None:
        return DEFAULT
    if isinstance(level, Level):
        return level
    try:
        return LEVELS[level]
    except (KeyError, TypeError):
        raise ValueError(f"level must be one of {', '.join(NAMES)}, got {level!r}") from None
