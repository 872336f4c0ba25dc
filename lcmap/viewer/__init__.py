"""``lcmap view``: a local web map of a label map over its scenes, with the legend, a click
query, and naming classes in the page (see :mod:`lcmap.viewer.server`)."""
