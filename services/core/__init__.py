"""vdup: tells a short-video service whether an upload copies a video already in its catalog.

The core package is pure where it can be: decoding, descriptors, alignment and the decision take
arrays and return values. The API (``vdup.api``), the shard service (``vdup.indexer``) and the
Triton client (``vdup.triton``) are the edges that do I/O.
"""

__version__ = "0.1.0"
