"""Raster and vector input/output. Knows rasterio, never torch."""
