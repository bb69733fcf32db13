# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Whether a config or checkpoint a tool is given can be there, so that a
tool names a missing one before it builds anything."""
import os.path as osp


def config_missing(path: str) -> bool:
    """A config file that does not exist; ``PACKAGE::PATH`` names (a config
    shipped with a package, as ``mmdet::``) are left to the loader."""
    return '::' not in path and not osp.isfile(path)


def checkpoint_missing(path: str) -> bool:
    """A local checkpoint (``~`` expanded, as mmengine expands it) that does
    not exist; URLs (``https://``, ``s3://``, ...) are left to the loader."""
    return '://' not in path and not osp.isfile(osp.expanduser(path))
