"""lcmap: land-cover maps from georeferenced scenes without labels, or with very few.

``import lcmap`` stays light (no torch): the Python API lives in :mod:`lcmap.api`, whose
functions import the compute engine only when called.
"""

__version__ = "0.1.0"
