"""Pure geometry: control points, PnP, camera models, alignment, kinematics, §5.1 checks."""
