"""``python -m slsdk.demos.web serve BUNDLE [--video FILE | --landmarks FILE.pose] [--hand-model FILE]
[--face-model FILE] [--pose-model FILE] [--port N]``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slsdk.demos.web import WebDemoError, make_server

app = typer.Typer(add_completion=False, help="The slsdk web demo (ONNX Runtime Web + MediaPipe in the browser).")


@app.callback()
def _root() -> None:
    """Serve the web demo page."""


@app.command()
def serve(bundle: Path = typer.Argument(..., help="onnx/ort bundle directory or .zip"),
          video: Optional[Path] = typer.Option(None, "--video", help="video file the page's URL runs on load"),
          hand_model: Optional[Path] = typer.Option(None, "--hand-model",
                                                    help="hand_landmarker.task (crop=hands, landmark and fusion bundles)"),
          face_model: Optional[Path] = typer.Option(None, "--face-model",
                                                    help="face_landmarker.task (landmark and fusion bundles)"),
          pose_model: Optional[Path] = typer.Option(None, "--pose-model",
                                                    help="pose_landmarker.task (landmark and fusion bundles)"),
          landmarks: Optional[Path] = typer.Option(None, "--landmarks",
                                                   help="a .pose landmark recording the page feeds a landmark "
                                                        "bundle (instead of a video)"),
          port: int = typer.Option(8000, "--port", help="port on 127.0.0.1 (0: any free one)"),
          debug: bool = typer.Option(False, "--debug", help="add &debug=1 (per-chunk logits) to the URL")) -> None:
    """Serve the page, the bundle and the files on 127.0.0.1; the first line printed is the page's URL."""

    try:
        srv = make_server(bundle, video, hand_model, port, extra_query="debug=1" if debug else "",
                          face_model=face_model, pose_model=pose_model, landmarks=landmarks)
    except (WebDemoError, ValueError, FileNotFoundError) as e:  # BundleError and the hand-model errors included
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(srv.url)
    typer.echo("serving on 127.0.0.1 (Ctrl+C stops); open the URL above in Chromium, or drop ?video=... "
               "to pick a file or the camera in the page", err=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
        if srv.scratch is not None:
            srv.scratch.cleanup()


if __name__ == "__main__":
    app()
