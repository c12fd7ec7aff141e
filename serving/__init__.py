"""The HTTP service: an immutable snapshot of the latest artifacts answers live sessions with the code
the evaluation measures."""
