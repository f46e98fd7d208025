"""tests.support.ray_head: Ray starts, and processes are killed wholesale, only in a loopback-only namespace."""

import os
import shutil
import subprocess

import pytest

from tests.support import ray_head

ROOT = ray_head.ROOT


def test_outside_its_own_namespace_no_head_starts_and_nothing_is_killed():
    assert not ray_head.in_private_namespace()
    with pytest.raises(RuntimeError, match="would kill the host's processes"):
        ray_head.kill_namespace_but_me()
    with pytest.raises(RuntimeError, match="loopback-only network namespace"):
        with ray_head.local_ray_head(num_cpus=1, resources={}):
            pass


def test_namespace_command_gives_a_loopback_only_namespace():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.fail("needs root with `unshare` and `ip`, as the Ray tests do")
    code = "from tests.support.ray_head import in_private_namespace as f; print(f())"
    res = subprocess.run(ray_head.namespace_command(["-c", code]), cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
