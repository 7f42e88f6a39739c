"""Where the project's files are read from: an installed package finds its checkout by CAREWATCH_ROOT."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_an_installed_package_reads_sql_suites_and_config_from_carewatch_root(tmp_path):
    # the production image installs carewatch into site-packages, so the checkout two levels
    # above the module does not exist there; CAREWATCH_ROOT names it
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")}
    env["CAREWATCH_ROOT"] = str(tmp_path)
    code = ("import json; from carewatch import paths; print(json.dumps([str(paths.sql_dir()), str(paths.expectations_dir()), "
            "str(paths.config_dir()), str(paths.home()), str(paths.PROJECT_ROOT)]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [str(tmp_path / "include" / "sql"), str(tmp_path / "expectations"),
                                      str(tmp_path / "config"), str(tmp_path / "var"), str(tmp_path)]
