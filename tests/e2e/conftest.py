"""The real-AWS tests are collected only when asked for: LOCALAI_E2E_AWS=1 (they create
EC2 resources and cost money; see README "Testing on real AWS")."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("LOCALAI_E2E_AWS") == "1" else ["test_*.py"]
