"""``medstore demo``: train a small MONAI UNet from a copy of the sample store.

The command reaches the ``medstore`` CLI through the ``medstore.commands`` entry-point group, so
the store's own commands never import torch or MONAI.
"""
