"""hoposer: real-time 3D hand + object pose estimation."""

__version__ = "0.1.0"

__all__ = ["Estimator", "Estimate"]


def __getattr__(name: str):
    # `from hoposer import Estimator` without loading torch on a bare `import hoposer`.
    if name in __all__:
        from hoposer.stream import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'hoposer' has no attribute {name!r}")
