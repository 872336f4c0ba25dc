"""Polygon geometry of vectorised classes: pieces dissolved across window edges, made valid,
moved from pixel to map coordinates, simplified."""

import logging

import numpy as np
import shapely
from numpy.typing import NDArray
from rasterio.transform import Affine

log = logging.getLogger(__name__)


def dissolve(pieces: NDArray[np.object_]) -> NDArray[np.object_]:
    """Merge same-class pieces cut at window edges into one polygon per connected region.

    Pieces are grouped by touching (an STRtree query, then connected components) and each group
    is merged on its own, so a merge holds one region, not the whole class. Pixel coordinates are
    exact integers, so the cut edges cancel exactly; pieces that only touch at a corner come out
    as separate polygons (4-connectivity), as rasterio's shapes() gives them.
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    count = len(pieces)
    left, right = shapely.STRtree(pieces).query(pieces, predicate="intersects")
    graph = coo_array((np.ones(len(left), np.int8), (left, right)), shape=(count, count))
    _, group = connected_components(graph, directed=False)
    order = np.argsort(group, kind="stable")
    merged: list[NDArray[np.object_]] = []
    for members in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
        if len(members) == 1:  # touches a window edge but does not continue past it
            merged.append(pieces[members])
        else:
            merged.append(shapely.get_parts(shapely.unary_union(pieces[members])))
    return np.concatenate(merged)


def made_valid(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Repair the rare invalid polygon, keeping only polygonal parts."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        log.debug("Repairing %d invalid polygons", int(bad.sum()))
        fixed = shapely.make_valid(geoms[bad])
        geoms = geoms.copy()
        for j, geom in zip(np.flatnonzero(bad), fixed, strict=True):
            parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
            geoms[j] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return geoms


def to_map_units(
    geoms: NDArray[np.object_], transform: Affine, segmentize: bool
) -> NDArray[np.object_]:
    """Pixel -> CRS coordinates; exterior rings counter-clockwise (RFC 7946's right-hand rule).

    With ``segmentize`` every pixel corner along an edge becomes a vertex first: GDAL leaves out
    the vertex where three regions meet along a straight edge, and coverage simplification needs
    neighbours to share the same vertices.
    """
    if not len(geoms):
        return geoms
    if segmentize:
        geoms = shapely.segmentize(geoms, 1.0)
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def affine(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack((a * x + b * y + c, d * x + e * y + f))

    mapped: NDArray[np.object_] = shapely.transform(geoms, affine)
    return shapely.orient_polygons(mapped, exterior_cw=False)  # type: ignore[no-any-return]


def simplified(geoms: NDArray[np.object_], tolerance: float) -> NDArray[np.object_]:
    simplified: NDArray[np.object_] = shapely.coverage_simplify(geoms, tolerance)
    simplified = shapely.orient_polygons(simplified, exterior_cw=False)
    return made_valid(simplified)
