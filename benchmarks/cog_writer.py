import time, sys, numpy as np, rasterio
from pathlib import Path
import lcmap.io.writer as W
src = '/tmp/tp/map_16000.tif'
with rasterio.open(src) as s:
    labels = s.read(1); crs, tr = s.crs, s.transform
h, w = labels.shape
def run(stream):
    W.LabelWriter._streams_overviews = (lambda self: stream) if not stream else ORIG
    out = Path('/tmp/tp/cogbench.tif')
    t0 = time.perf_counter()
    with W.LabelWriter(out, width=w, height=h, crs=crs, transform=tr, dtype=np.dtype('uint8'), nodata=255,
                       class_names=[str(i) for i in range(6)], colours=[(i,i,i) for i in range(6)], overwrite=True) as wr:
        for r in range(0, h, 512):
            wr.write_rows(r, labels[r:r+512])
        t1 = time.perf_counter()
        wr.commit()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1
ORIG = W.LabelWriter._streams_overviews
for rep in range(2):
    for stream in (False, True):
        a, b = run(stream)
        print(f"streamed={stream}: rows {a:.2f} s, commit {b:.2f} s, total {a+b:.2f} s ({256/(a+b):.1f} Mpx/s)")
