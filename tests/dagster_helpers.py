"""Helpers shared by the Dagster tests."""


def error_text(res, node):
    """The failure message of a step with its causes (Dagster wraps input-loading errors)."""
    err, parts = res.failure_data_for_node(node).error, []
    while err is not None:
        parts.append(err.message)
        err = err.cause
    return "\n".join(parts)
