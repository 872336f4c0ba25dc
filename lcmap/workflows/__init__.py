"""Workflows: what one command does, from paths to finished outputs.

One module a workflow; each opens its inputs, checks its outputs through the one guard
(:mod:`lcmap.io.staging`) before any work, and calls the floors below it. Imports run down
only: ``cli`` -> ``api`` -> ``workflows`` -> ``scale`` / ``engine`` -> ``methods`` ->
``nets`` / ``models`` -> ``io`` -> ``tiling`` / ``errors``.

- :mod:`~lcmap.workflows.fitting`: a method built from its options and fitted (shared);
- :mod:`~lcmap.workflows.segment`: one scene to a label map;
- :mod:`~lcmap.workflows.train`: scenes to a model file;
- :mod:`~lcmap.workflows.describe`: ``lcmap info``.
"""
