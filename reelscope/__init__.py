"""reelscope: streaming understanding of short-form video.

The installed namespace. The project's top-level folders are mapped under it by pyproject.toml
(`producers/` is `reelscope.producers`, `schemas/` is `reelscope.schemas`, ...), so nothing generic lands
in site-packages. docs/architecture.md shows the layers.
"""

__version__ = "0.2.0"
