"""Helpers the tests import by name (``from support.nifti import make_nifti``).

``pyproject.toml`` puts ``tests/`` on pytest's ``pythonpath``, so this package imports the same way
under ``--import-mode=importlib`` from every test folder.
"""
