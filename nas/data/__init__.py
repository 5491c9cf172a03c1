"""The data layer: sources (digits, image folders, torchvision sets), splits, augmented views, cache.

Turns a `--data` argument into tensors: decoded pools, a stratified validation split, fixed
augmented training views, all cached on disk. May import `nas.model` and the base modules.
"""
