"""Semi-supervised learning (§5): filtered pseudo-labels from unlabelled videos, self-training."""
