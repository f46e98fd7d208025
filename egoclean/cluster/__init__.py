"""The clip stages on Ray: tasks and the resident encoder actor."""
