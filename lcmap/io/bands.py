"""Which of a scene's bands are red, green and blue: what an RGB network must see as R, G, B.

A ViT pre-trained on photographs reads its first three input bands as red, green and blue. A
Landsat or Sentinel-2 stack in band order starts with blue (or coastal aerosol), so the true
colour bands are found by what the file says of them, in this order:

1. colour interpretation (``red``, ``green``, ``blue``: what GDAL writes for RGB photographs);
2. band descriptions naming the colour (``red``, ``Red``, ``B04 red``...);
3. Sentinel-2 and Landsat 8/9 band codes in the descriptions (``B2``/``B02`` blue, ``B3``/``B03``
   green, ``B4``/``B04`` red; the two missions share them), when the file also names a band
   beyond the visible ones (``B5`` and up, ``B8A``), which rules out an RGB file named
   B1-B3 and Landsat 4-7's older numbering is not guessed at (there ``B2`` is green);
4. with no descriptions at all, the layouts of whole-product stacks by band count: Sentinel-2
   L1C (13 bands, B01-B12 with B8A) and L2A (12 bands, without B10), Landsat 8/9 (11 bands).

Nothing found: the file order stands (``-b`` chooses).
"""

import re
from typing import Any

#: Band counts of whole-product stacks with their 1-based (red, green, blue) bands.
LAYOUTS = {
    13: ((4, 3, 2), "a Sentinel-2 L1C stack (13 bands)"),
    12: ((4, 3, 2), "a Sentinel-2 L2A stack (12 bands)"),
    11: ((4, 3, 2), "a Landsat 8/9 stack (11 bands)"),
}
_COLOURS = ("red", "green", "blue")
_CODE = re.compile(r"^(?:b|band)[ _]?0*(\d{1,2})(a?)$", re.IGNORECASE)


def _codes(descriptions: list[str]) -> dict[str, int]:
    """Band code (``2``, ``8a``) -> 1-based band, from descriptions such as ``B02``."""
    found = {}
    for i, text in enumerate(descriptions, start=1):
        m = _CODE.match(text.strip())
        if m:
            found[m.group(1).lstrip("0") + m.group(2).lower()] = i
    return found


def true_colour(src: Any) -> tuple[tuple[int, int, int], str] | None:
    """The 1-based (red, green, blue) bands of ``src`` and how they were found, or None."""
    interp = [c.name for c in src.colorinterp]
    if all(c in interp for c in _COLOURS):
        red, green, blue = (interp.index(c) + 1 for c in _COLOURS)
        return (red, green, blue), "colour interpretation"
    descriptions = [d or "" for d in src.descriptions]
    named: dict[str, int] = {}
    for i, text in enumerate(descriptions, start=1):
        words = set(re.findall(r"[a-z]+", text.lower()))
        for colour in _COLOURS:
            if colour in words and colour not in named:
                named[colour] = i
    if len(named) == 3:
        return (named["red"], named["green"], named["blue"]), "band descriptions"
    codes = _codes(descriptions)
    beyond = any(k == "8a" or (k.isdigit() and int(k) >= 5) for k in codes)
    if all(k in codes for k in ("2", "3", "4")) and beyond:
        return (codes["4"], codes["3"], codes["2"]), "Sentinel-2/Landsat 8 band codes"
    if not any(descriptions) and src.count in LAYOUTS:
        rgb, what = LAYOUTS[src.count]
        return rgb, what
    return None


def display_bands(src: Any) -> tuple[int, ...]:
    """The bands a picture of ``src`` shows as red, green and blue: its true-colour bands when
    the file says which they are (so a Sentinel-2 or Landsat stack looks as it does in QGIS's
    true-colour rendering, not aerosol, blue and green), else its first three, or its first
    alone as grey when it has fewer."""
    found = true_colour(src)
    if found is not None:
        return found[0]
    return (1, 2, 3) if src.count >= 3 else (1,)


def rgb_first(src: Any, bands: list[int]) -> tuple[list[int], str | None]:
    """``bands`` with the true-colour bands moved to the front in R, G, B order (the others
    after them, in file order), and why; unchanged with None when they are not all found
    among ``bands``."""
    found = true_colour(src)
    if found is None or not all(b in bands for b in found[0]):
        return bands, None
    rgb = list(found[0])
    return rgb + [b for b in bands if b not in rgb], found[1]


#: Words in a band's description or colour interpretation that name what it sees; "blue"
#: among them makes true colour possible.
_SEEN = {"red", "green", "blue", "nir", "infrared", "swir", "rededge"}


def false_colour(src: Any) -> str | None:
    """How ``src``'s bands are named when they name what they see and none of them is blue (a
    false-colour scene: near-infrared, red, green...), else None.

    Band descriptions decide when they name anything (they are written on purpose, where GDAL
    gives every 3-band byte GeoTIFF a red, green, blue colour interpretation); otherwise the
    colour interpretation does. Such a scene cannot be shown to an RGB network as true colour:
    its first three bands would be read as red, green and blue whatever they are.
    """
    interp = [c.name if c.name in _COLOURS else "" for c in src.colorinterp]
    for names in ([d or "" for d in src.descriptions], interp):
        words = [set(re.findall(r"[a-z]+", text.lower())) & _SEEN for text in names]
        if any(words):
            blue = any("blue" in w for w in words)
            return None if blue else ", ".join(text or "?" for text in names)
    return None
