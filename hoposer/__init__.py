"""hoposer: real-time 3D hand + object pose estimation."""

__version__ = "0.1.0"
