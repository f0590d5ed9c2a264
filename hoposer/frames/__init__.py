"""Frames in, boxes and drawings out: sources, hand/object detection, drawing.

Shared by `stream` (live and video), `train` (pseudo-labels, their report, `adapt`) and `calib`,
so that every command reads the same sources the same way; nothing here knows about networks.
"""
