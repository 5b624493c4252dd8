"""Video: colour without flicker for films (``instacolor video IN -o OUT``).

* :mod:`~instacolor.video.sources` - frames in (PyAV video files, PNG/TIFF folders);
* :mod:`~instacolor.video.flow` - DIS optical flow and its forward-backward check;
* :mod:`~instacolor.video.temporal` - shot cuts and the chroma carried along time;
* :mod:`~instacolor.video.keyframes` - keyframe hints files;
* :mod:`~instacolor.video.pipeline` - one frame at a time, :func:`colorize_frames`;
* :mod:`~instacolor.video.sinks` - frames out (PNG folders, encoded segments, stream copy);
* :mod:`~instacolor.video.job` - :func:`colorize_video`: chunks, resume, manifest;
* :mod:`~instacolor.video.metrics` - warp error and colour distribution consistency.

Imports go one way: sources, flow -> temporal -> pipeline -> sinks -> job.
"""

from instacolor.video.flow import FlowSettings
from instacolor.video.job import VideoReport, colorize_video
from instacolor.video.pipeline import FrameColorizer, colorize_frames
from instacolor.video.temporal import Stabilization

__all__ = [
    "FlowSettings",
    "FrameColorizer",
    "Stabilization",
    "VideoReport",
    "colorize_frames",
    "colorize_video",
]
