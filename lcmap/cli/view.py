"""``lcmap view``: look at a map over its scenes in a local web page, or as a PNG."""

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, parse_bands, reported_errors

#: The help panel of the options of the local web server.
SERVER = "Web server"


def remote_hint(port: int) -> str | None:
    """The SSH port-forward line to give a user logged in over SSH, else None."""
    if not os.environ.get("SSH_CONNECTION"):
        return None
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "you"
    return (
        f"This machine is remote: on yours, run  ssh -N -L {port}:127.0.0.1:{port} "
        f"{user}@{socket.gethostname()}  and open http://127.0.0.1:{port}/"
    )


Scenes = Annotated[list[Path] | None, typer.Argument(help="Scenes to show under the map.")]
Bands = Annotated[
    str | None,
    typer.Option(
        "--bands",
        "-b",
        help="The scenes' bands shown as red, green, blue \\[default: the true-colour bands "
        "where the file says which they are (a Sentinel-2 or Landsat stack: 4,3,2), else 1,2,3].",
    ),
]
Model = Annotated[
    Path | None,
    typer.Option(
        "--model", help="The model that made the map: naming classes in the page rewrites it."
    ),
]
Host = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address to listen on (127.0.0.1: this machine only).",
        rich_help_panel=SERVER,
    ),
]
Port = Annotated[
    int,
    typer.Option(
        "--port",
        help="Port to listen on (0: any free one).",
        min=0,
        max=65535,
        rich_help_panel=SERVER,
    ),
]
NoBrowser = Annotated[
    bool,
    typer.Option("--no-browser", help="Do not open a web browser.", rich_help_panel=SERVER),
]
Png = Annotated[
    Path | None,
    typer.Option(
        "--png",
        help="Write the scene and the map side by side with the legend to this PNG and "
        "exit, without a server.",
        dir_okay=False,
    ),
]


@command("view")
def view(
    label_map: Annotated[Path, typer.Argument(help="A label map (lcmap segment, lcmap classes).")],
    scenes: Scenes = None,
    bands: Bands = None,
    model: Model = None,
    host: Host = "127.0.0.1",
    port: Port = 0,
    no_browser: NoBrowser = False,
    png: Png = None,
    overwrite: opt.Overwrite = False,
) -> None:
    """Show a map over its scenes in a local web page: pan and zoom, map opacity, the legend
    with each class's area, a click for the class and the band values there, and classes named
    and merged in the page (written as a new map and model, never in place).

    Tiles are read from the files as they are asked for (overviews used), so a map of any size
    opens at once. The server listens on 127.0.0.1 and serves only the files named here; stop
    it with Ctrl-C.

    Examples:

        $ lcmap view map.tif scene.tif

        $ lcmap view map.tif scene.tif -b 4,3,2 --model model.lcmap

        $ lcmap view map.tif scene.tif --port 8765 --no-browser   # then forward the port

        $ lcmap view map.tif scene.tif --png look.png
    """
    scenes = scenes or []
    chosen = parse_bands(bands)
    with reported_errors():
        if png is not None:
            from lcmap.io.preview import write_preview

            if len(scenes) > 1:
                raise typer.BadParameter("--png shows one scene.", param_hint="SCENES")
            write_preview(
                label_map, png, scene=scenes[0] if scenes else None, bands=chosen,
                overwrite=overwrite,
            )  # fmt: skip
            echo(f"Wrote {png}")
            return
        from lcmap.errors import LcmapError
        from lcmap.io.scene import check_input_file
        from lcmap.viewer.server import Viewer, ViewerServer

        check_input_file(label_map, "Map")
        if model is not None:
            check_input_file(model, "Model")
        viewer = Viewer(label_map, scenes, chosen, model)
        try:
            server = ViewerServer(viewer, host, port)
        except OSError as exc:
            raise LcmapError(
                f"Cannot listen on {host}:{port}: {exc.strerror}; --port 0 takes a free port."
            ) from None
    for scene in viewer.scenes:
        if scene.slow:
            echo(
                f"{scene.path.name} has no overviews: it shows only when zoomed in near its own "
                f"pixels. 'gdaladdo -r average {scene.path}' builds them."
            )
    echo(f"Serving {label_map.name} on {server.url}  (Ctrl-C to stop)")
    hint = remote_hint(server.server_address[1])
    if hint:
        echo(hint)
    if not no_browser and not hint:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        viewer.wait_idle()  # a map being written from the page is finished, not cut off
    echo("Stopped.")
