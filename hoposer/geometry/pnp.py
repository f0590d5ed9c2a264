"""The object's 6D pose from its control-point proposals (paper §4.3).

The object decoder votes, from every grid cell, for the 2D position of each of the 21 control
points, with a confidence. For each control point the `k` most confident votes (the paper uses
k = 10) become 2D-3D correspondences with that control point's 3D position in the object frame,
and RANSAC over AP3P's four-point samples, the inliers re-selected at SQPnP poses, and one
Levenberg-Marquardt refinement give `R, t` (`x_cam = R · x_obj + t`). A failure is reported,
never hidden behind an identity pose.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from hoposer.geometry.camera import project

#: Fewest correspondences (and inliers) accepted.
MIN_POINTS = 6

#: Levenberg-Marquardt stopping rule (OpenCV's default stops at float32 precision).
_REFINE_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-12)
#: Pose the inliers, re-select them at that pose, and so on, at most this often (RANSAC's
#: inliers are those of a pose from four noisy points; a pose from all of them finds more).
_RESELECT_ROUNDS = 3


@dataclass(frozen=True, eq=False)
class PnPResult:
    """An object pose, or why there is none."""

    success: bool
    R: np.ndarray  #: (3, 3) object-to-camera rotation; NaN on failure
    t: np.ndarray  #: (3,) object-to-camera translation, metres; NaN on failure
    inliers: int  #: correspondences within the RANSAC threshold of the final pose
    reprojection_error_px: float  #: mean reprojection error of the inliers; NaN on failure
    reason: str = ""  #: empty on success

    @classmethod
    def failure(cls, reason: str, inliers: int = 0) -> "PnPResult":
        """A failed result: NaN pose, the given reason."""
        return cls(
            success=False,
            R=np.full((3, 3), np.nan),
            t=np.full(3, np.nan),
            inliers=inliers,
            reprojection_error_px=float("nan"),
            reason=reason,
        )


def _reprojection_errors(points_3d, points_2d, rvec, tvec, K, dist) -> np.ndarray:
    projected, _ = cv2.projectPoints(points_3d, rvec, tvec, K, dist)
    return np.linalg.norm(projected.reshape(-1, 2) - points_2d, axis=1)


def solve_pnp(
    points_3d,
    points_2d,
    K,
    dist=None,
    ransac_threshold_px: float = 8.0,
    iterations: int = 200,
    seed: int = 0,
) -> PnPResult:
    """Robust PnP: RANSAC over AP3P samples, inliers re-selected at SQPnP poses, then LM.

    AP3P's four-point samples are about 4× cheaper than EPnP's five-point ones (2 ms instead of
    8 ms when no consensus stops RANSAC early) and more often all inliers; re-selecting the
    inliers at a pose from all of them recovers those a noisy sample missed. On simulated votes
    (30-80 % inliers, 1-3 px noise) this is at least as accurate as RANSAC-EPnP with one
    refinement, and much more so with few inliers. The re-selection poses come from SQPnP
    (0.04 ms for 200 points, within 1 % of the least-squares reprojection error); the
    Levenberg-Marquardt refinement that minimises the reprojection error exactly (0.3-0.4 ms
    from a RANSAC pose) runs once, on the final inliers.

    Args:
        points_3d: `(N, 3)` object-frame points (repeats allowed).
        points_2d: `(N, 2)` their pixels; rows with a non-finite value on either side are dropped.
        K: `(3, 3)` intrinsics.
        dist: OpenCV distortion coefficients, or None for none.
        ransac_threshold_px: inlier threshold in pixels.
        iterations: RANSAC iterations.
        seed: OpenCV's RNG seed, set before RANSAC so that results are reproducible.

    Returns:
        The pose with `success=True`, or `success=False`, NaN `R`/`t` and a `reason` when there
        are fewer than 6 usable correspondences or inliers, the inliers collapse to one pixel,
        OpenCV fails, or the pose is not finite or puts the object behind the camera.
    """
    points_3d = np.asarray(points_3d, dtype=np.float64)
    points_2d = np.asarray(points_2d, dtype=np.float64)
    if points_3d.ndim != 2 or points_3d.shape[1] != 3:
        raise ValueError(f"points_3d must be (N, 3), got {points_3d.shape}")
    if points_2d.shape != (len(points_3d), 2):
        raise ValueError(f"points_2d must be ({len(points_3d)}, 2), got {points_2d.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"camera matrix must be (3, 3), got {K.shape}")
    dist = None if dist is None else np.asarray(dist, dtype=np.float64).reshape(-1)
    if not np.isfinite(K).all():
        return PnPResult.failure("the camera matrix is not finite")

    finite = np.isfinite(points_3d).all(1) & np.isfinite(points_2d).all(1)
    obj = np.ascontiguousarray(points_3d[finite])
    img = np.ascontiguousarray(points_2d[finite])
    if len(obj) < MIN_POINTS:
        return PnPResult.failure(
            f"only {len(obj)} finite correspondences (of {len(points_3d)}); PnP needs {MIN_POINTS}"
        )

    spread = np.ptp(img, axis=0).max()
    if spread < 1.0:  # no minimal sample has a pose: say why rather than "no inliers"
        return PnPResult.failure(f"the proposals span {spread:.2g} px; the pose is undetermined")
    cv2.setRNGSeed(int(seed))
    try:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            obj,
            img,
            K,
            dist,
            iterationsCount=int(iterations),
            reprojectionError=float(ransac_threshold_px),
            confidence=0.999,
            flags=cv2.SOLVEPNP_AP3P,
        )
    except cv2.error as exc:
        return PnPResult.failure(f"OpenCV solvePnPRansac failed: {exc.err}")
    count = 0 if inliers is None else len(inliers)
    if not ok or count < MIN_POINTS:
        return PnPResult.failure(
            f"RANSAC found {count} inliers within {ransac_threshold_px:g} px; needs {MIN_POINTS}",
            count,
        )
    index = inliers.reshape(-1)
    rounds = _RESELECT_ROUNDS if len(index) < len(obj) else 0  # every point in: none to find
    for _ in range(rounds):
        try:
            ok, sq_rvec, sq_tvec = cv2.solvePnP(
                obj[index], img[index], K, dist, flags=cv2.SOLVEPNP_SQPNP
            )
        except cv2.error:
            ok = False
        if not ok or not (np.isfinite(sq_rvec).all() and np.isfinite(sq_tvec).all()):
            break  # keep the last good pose and its inliers
        selected = np.flatnonzero(
            _reprojection_errors(obj, img, sq_rvec, sq_tvec, K, dist) < ransac_threshold_px
        )
        if len(selected) < MIN_POINTS:
            break
        rvec, tvec = sq_rvec, sq_tvec
        if np.array_equal(selected, index):
            break
        index = selected
    try:
        rvec, tvec = cv2.solvePnPRefineLM(
            obj[index], img[index], K, dist, rvec, tvec, criteria=_REFINE_CRITERIA
        )
    except cv2.error as exc:
        return PnPResult.failure(f"OpenCV solvePnPRefineLM failed: {exc.err}", count)
    if not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
        return PnPResult.failure("PnP returned a non-finite pose", count)
    errors = _reprojection_errors(obj, img, rvec, tvec, K, dist)
    inlier_mask = errors < ransac_threshold_px
    rvec, tvec = rvec.reshape(3), tvec.reshape(3)
    count = int(inlier_mask.sum())
    if count < MIN_POINTS:
        return PnPResult.failure(
            f"after refinement only {count} points lie within {ransac_threshold_px:g} px", count
        )
    spread = np.ptp(img[inlier_mask], axis=0).max()
    if spread < 1.0:
        return PnPResult.failure(
            f"the inlier proposals span {spread:.2g} px; the pose is undetermined", count
        )
    R = cv2.Rodrigues(rvec)[0]
    depth = obj[inlier_mask] @ R[2] + tvec[2]
    if tvec[2] <= 0 or (depth <= 0).any():
        return PnPResult.failure("PnP put the object behind the camera", count)
    return PnPResult(
        success=True,
        R=R,
        t=tvec.astype(np.float64),
        inliers=count,
        reprojection_error_px=float(errors[inlier_mask].mean()),
        reason="",
    )


def top_proposals(grid_confidence, k: int) -> np.ndarray:
    """The `k` most confident cells of each control point, most confident first.

    Ties go to the lower cell index, NaN confidences come last: the order of a stable sort by
    decreasing confidence, found with a linear-time partition instead of sorting every cell
    (1024 cells × 21 points in the `lite` grid).

    Args:
        grid_confidence: `(N, C)` confidences.
        k: proposals per control point (clipped to N; at least 1).

    Returns:
        `(k, C)` cell indices.

    Example:
        >>> top_proposals(np.array([[0.2, 0.9], [0.7, 0.9], [0.7, np.nan]]), 2).tolist()
        [[1, 0], [2, 1]]
    """
    confidence = np.asarray(grid_confidence)
    if confidence.ndim != 2:
        raise ValueError(f"grid_confidence must be (N, C), got {confidence.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    # One contiguous row of scores per control point; lower is better, NaN as +inf (last).
    score = -np.ascontiguousarray(confidence.T)
    nan = np.isnan(score)
    if nan.any():
        score[nan] = np.inf
    n = score.shape[1]
    k = min(int(k), n)
    if k < n:
        chosen = np.argpartition(score, k - 1, axis=1)[:, :k]  # (C, k), in no particular order
        kept = np.take_along_axis(score, chosen, axis=1)
        kth = kept.max(axis=1, keepdims=True)  # the k-th best score of each control point
        # A cell equal to the k-th best may be left out while a later one with the same score is
        # kept; the stable order wants the lowest indices among equal scores.
        tied = (score == kth).sum(axis=1) != (kept == kth).sum(axis=1)
        if tied.any():
            chosen[tied] = np.argsort(score[tied], axis=1, kind="stable")[:, :k]
        chosen.sort(axis=1)  # lower index first, so that the stable sort below breaks ties so
    else:
        chosen = np.broadcast_to(np.arange(n), score.shape)
    order = np.argsort(np.take_along_axis(score, chosen, axis=1), axis=1, kind="stable")
    return np.take_along_axis(chosen, order, axis=1).T


def top_votes(grid_points, grid_confidence, k: int = 10, box=None) -> np.ndarray:
    """The `k` most confident cells' proposals for each control point (paper §4.3), `(k, C, 2)`.

    Cells are chosen by `top_proposals` (ties, lower cell index first; NaN confidences last).
    Only the chosen proposals are converted (float64, pixels), not the whole grid.

    Args:
        grid_points: `(N, C, 2)` each cell's proposal for each control point, pixels, or
            normalised to `box` when it is given (any leading grid shape, e.g. `(R, R, C, 2)`,
            is flattened).
        grid_confidence: `(N, C)` matching confidences (or `(R, R, C)`).
        k: proposals per control point (clipped to the number of cells).
        box: `(4,)` [x1, y1, x2, y2] pixels when `grid_points` are box-normalised (the object
            decoder's raw output); None when they are pixels already.
    """
    grid_points = np.asarray(grid_points)
    grid_confidence = np.asarray(grid_confidence)
    shapes_agree = grid_confidence.shape == grid_points.shape[:-1]
    if grid_points.ndim < 2 or grid_points.shape[-1] != 2 or not shapes_agree:
        raise ValueError(
            "grid_points must be (N, C, 2) and grid_confidence (N, C), got "
            f"{grid_points.shape} and {grid_confidence.shape}"
        )
    c = grid_points.shape[-2]
    top = top_proposals(grid_confidence.reshape(-1, c), k)  # (k, C) cell indices
    votes = grid_points.reshape(-1, c, 2)[top, np.arange(c)[None, :]].astype(np.float64)
    if box is not None:
        box = np.asarray(box, dtype=np.float64).reshape(4)
        votes = box[:2] + votes * (box[2:] - box[:2])
    return votes


def object_pose_from_votes(votes, control_points, K, **pnp_kwargs) -> PnPResult:
    """The object pose from `top_votes`' pixel votes by `solve_pnp`.

    Each vote pairs with its control point's 3D position: `C·k` correspondences.

    Args:
        votes: `(k, C, 2)` pixels.
        control_points: `(C, 3)` the control points in the object frame (C = 21).
        K: `(3, 3)` intrinsics of the image the votes are in.
        **pnp_kwargs: passed to `solve_pnp` (dist, ransac_threshold_px, iterations, seed).
    """
    control_points = np.asarray(control_points, dtype=np.float64)
    votes = np.asarray(votes, dtype=np.float64)
    if control_points.ndim != 2 or control_points.shape[1] != 3:
        raise ValueError(f"control_points must be (C, 3), got {control_points.shape}")
    c = len(control_points)
    if votes.ndim != 3 or votes.shape[1:] != (c, 2):
        raise ValueError(f"votes must be (k, {c}, 2), got {votes.shape}")
    points_3d = np.broadcast_to(control_points, (len(votes), c, 3))
    return solve_pnp(points_3d.reshape(-1, 3), votes.reshape(-1, 2), K, **pnp_kwargs)


@dataclass(frozen=True)
class ObjectPoseGate:
    """When a PnP pose is believable enough to publish as found.

    PnP returns a pose for almost any set of votes, including votes that all land on a few
    pixels (an object "at infinity", metres away) or that no single pose explains. A pose passes
    only if the votes are spread over the object box, the inliers fit it closely and are many,
    its depth is within reach of the hand holding it, and its projection lands on the box.
    Lengths in the image are fractions of the object box's diagonal, so the thresholds hold at any
    resolution and distance. The box before tracking starts is the hand's grasp region, larger
    than a small object, so the votes' spread is measured against the smaller of the box and the
    object's size at the hand's depth (`f · diameter / z_wrist`).
    """

    min_vote_spread: float = 0.35  #: votes' extent / min(box diagonal, object size at the hand)
    max_reprojection: float = 0.06  #: mean inlier reprojection error / box diagonal
    min_inlier_ratio: float = 0.3  #: inliers / votes
    max_depth_from_hand_m: float = 0.5  #: |z_object − z_wrist|
    #: object surface (centre − radius) to the nearest hand joint, once the hand is refined
    max_gap_to_hand_m: float = 0.1
    depth_range_m: tuple[float, float] = (0.05, 5.0)  #: object depth with no placed hand
    min_box_overlap: float = 0.3  #: share of the projected object's box inside the object box
    #: share of the object's silhouette outside the hand mesh's (`visible_beside_hand`)
    min_beside_hand: float = 0.4

    def statistics(
        self,
        result: PnPResult,
        votes: np.ndarray,
        object_box: np.ndarray,
        control_points: np.ndarray,
        K: np.ndarray,
        wrist_depth_m: float = float("nan"),
    ) -> dict[str, float]:
        """The measured quantities the gate compares (NaN where the pose is missing)."""
        control_points = np.asarray(control_points, np.float64)
        votes = np.asarray(votes, np.float64).reshape(-1, len(control_points), 2)
        object_box = np.asarray(object_box, np.float64)
        diagonal = max(float(np.linalg.norm(object_box[2:] - object_box[:2])), 1e-9)
        scale = diagonal
        if np.isfinite(wrist_depth_m) and wrist_depth_m > 0:
            diameter = float(np.linalg.norm(np.ptp(control_points, axis=0)))
            scale = min(diagonal, max(float(K[0, 0]) * diameter / wrist_depth_m, 1e-9))
        with np.errstate(all="ignore"):
            centres = np.nanmedian(votes, axis=0)  # (C, 2): one robust vote per control point
            spread = float(np.nanmax(np.ptp(centres, axis=0))) / scale
        stats = {
            "vote_spread": spread,
            "reprojection": result.reprojection_error_px / diagonal,
            "inlier_ratio": result.inliers / max(len(votes.reshape(-1, 2)), 1),
            "depth_m": float(result.t[2]),
            "box_overlap": float("nan"),
        }
        if result.success:
            points = project(np.asarray(control_points) @ result.R.T + result.t, K)
            lo, hi = points.min(axis=0), points.max(axis=0)
            inter = np.clip(
                np.minimum(hi, object_box[2:]) - np.maximum(lo, object_box[:2]), 0, None
            )
            stats["box_overlap"] = float(inter.prod() / max((hi - lo).prod(), 1e-9))
        return stats

    def check(
        self,
        result: PnPResult,
        votes: np.ndarray,
        object_box: np.ndarray,
        control_points: np.ndarray,
        K: np.ndarray,
        wrist_depth_m: float = float("nan"),
    ) -> PnPResult:
        """`result` if it passes, else a failure whose reason names the first failed test."""
        if not result.success:
            return result
        s = self.statistics(result, votes, object_box, control_points, K, wrist_depth_m)
        reason = ""
        if not s["vote_spread"] >= self.min_vote_spread:
            reason = (
                f"the votes collapse to {s['vote_spread']:.2f} of the object's size "
                f"(needs {self.min_vote_spread:g})"
            )
        elif not s["reprojection"] <= self.max_reprojection:
            reason = (
                f"reprojection error {s['reprojection']:.3f} of the object box "
                f"(limit {self.max_reprojection:g})"
            )
        elif not s["inlier_ratio"] >= self.min_inlier_ratio:
            reason = (
                f"only {s['inlier_ratio']:.0%} of the votes are inliers "
                f"(needs {self.min_inlier_ratio:.0%})"
            )
        elif np.isfinite(wrist_depth_m) and not (
            abs(s["depth_m"] - wrist_depth_m) <= self.max_depth_from_hand_m
        ):
            reason = (
                f"depth {s['depth_m']:.2f} m is {abs(s['depth_m'] - wrist_depth_m):.2f} m from "
                f"the hand's (limit {self.max_depth_from_hand_m:g} m)"
            )
        elif not np.isfinite(wrist_depth_m) and not (
            self.depth_range_m[0] <= s["depth_m"] <= self.depth_range_m[1]
        ):
            reason = (
                f"depth {s['depth_m']:.2f} m is outside {self.depth_range_m[0]:g}–"
                f"{self.depth_range_m[1]:g} m"
            )
        elif not s["box_overlap"] >= self.min_box_overlap:
            reason = (
                f"the posed object covers its box by {s['box_overlap']:.0%} "
                f"(needs {self.min_box_overlap:.0%})"
            )
        if not reason:
            return result
        return PnPResult.failure(reason, result.inliers)


def visible_beside_hand(
    object_vertices: np.ndarray,
    hand_vertices: np.ndarray,
    hand_faces: np.ndarray,
    K: np.ndarray,
    resolution: int = 64,
) -> float:
    """The share of the object's silhouette that the hand's silhouette does not cover.

    Both meshes are in the camera frame (metres). The object's silhouette is the convex hull of
    its projected vertices (exact for boxes and cylinders); the hand's is the union of its
    projected triangles. Both are filled on a grid of `resolution` cells a side over the object's
    image box. A held object shows beside the fingers; an object "found" on the palm or the
    fingers, where the network took the hand for it, lies almost wholly inside the hand's
    silhouette. NaN when either mesh is not finite or not in front of the camera.
    """
    obj = np.asarray(object_vertices, np.float64)
    hand = np.asarray(hand_vertices, np.float64)
    if not (np.isfinite(obj).all() and np.isfinite(hand).all()):
        return float("nan")
    if obj[:, 2].min() <= 0 or hand[:, 2].min() <= 0:
        return float("nan")
    obj_2d, hand_2d = project(obj, K), project(hand, K)
    lo = obj_2d.min(axis=0)
    scale = resolution / max(float(np.ptp(obj_2d, axis=0).max()), 1e-9)

    def cells(points: np.ndarray) -> np.ndarray:  # grid coordinates with 2 fractional bits
        return np.round(((points - lo) * scale + 1) * 4).astype(np.int32)

    side = resolution + 2
    outline = np.zeros((side, side), np.uint8)
    cv2.fillConvexPoly(outline, cv2.convexHull(cells(obj_2d)), 1, cv2.LINE_8, 2)
    hand_mask = np.zeros_like(outline)
    triangles = cells(hand_2d)[np.asarray(hand_faces)]
    inside = (triangles.max(axis=1) >= 0).all(axis=1) & (triangles.min(axis=1) < 4 * side).all(
        axis=1
    )
    for triangle in triangles[inside]:  # one by one: fillPoly's even-odd rule cuts overlaps
        cv2.fillConvexPoly(hand_mask, triangle, 1, cv2.LINE_8, 2)
    area = int(outline.sum())
    if area == 0:
        return float("nan")
    return float((outline & (1 - hand_mask)).sum() / area)
