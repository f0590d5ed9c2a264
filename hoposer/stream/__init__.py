"""The live/video pipeline: capture, detection, stabilizer, views, writers, ZeroMQ."""
