"""The live/video pipeline: tracking, stabilizer, views, writers, ZeroMQ."""
