"""Camera intrinsics (checkerboard / ChArUco) and camera→robot extrinsics, and their files.

`read_camera_info` (ROS camera_info YAML) and `read_transform` (extrinsics YAML) are what the
stream loads; both raise `HoposerError` with a one-line message on a bad file.
"""

from hoposer.calib.camera_info import CameraInfo, read_camera_info, write_camera_info
from hoposer.calib.extrinsics import Transform, read_transform, write_transform

__all__ = [
    "CameraInfo",
    "Transform",
    "read_camera_info",
    "read_transform",
    "write_camera_info",
    "write_transform",
]
