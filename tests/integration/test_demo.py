"""test_demo.py: `make demo`'s script prints its summary and leaves no process behind."""

import os
import subprocess
import sys

from harness import FALCO_NATS, PLAYBOOKD, ROOT


def test_demo_prints_a_summary_and_leaves_no_process_behind():
    env = dict(os.environ, PLAYBOOKD=PLAYBOOKD, FALCO_NATS=FALCO_NATS)
    env.pop("KUBECONFIG", None)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "demo.py")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out, err = p.communicate(timeout=120)
    out = out.decode()
    assert p.returncode == 0, err.decode()
    assert "Terminal shell in container (Notice) on pod default/alpine" in out
    assert "-> kill     delete-pod   dry-run  pod default/alpine" in out
    assert "-> fence    taint-node   dry-run  node node-1" in out
    assert "6 alerts, 13 actions: 6 dry-run, 6 ok, 1 skipped; 6 Slack messages" in out
    assert "The fake cluster is unchanged" in out
    left = subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left behind: {left}"
