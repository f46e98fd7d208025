"""A clip's temporal structure: analysis, detection, segments, ground truth, pictures."""
