"""Helpers shared by the Dagster tests."""


def error_text(res, node):
    """The failure message of a step with its causes (Dagster wraps input-loading errors)."""
    err, parts = res.failure_data_for_node(node).error, []
    while err is not None:
        parts.append(err.message)
        err = err.cause
    return "\n".join(parts)


def run_scripts(script, args, env, timeout):
    """Run `python script arg` once per arg, all at once; return [(returncode, output)].
    A process still running after `timeout` seconds is killed (the wait raises)."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, str(script), a], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for a in args]
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
        outs.append((p.returncode, out))
    return outs
