#!/usr/bin/env bash
# Install (when needed) and run the agent on agent.toml with its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pbx-agent run -c "${PBX_AGENT_CONFIG:-agent.toml}"
