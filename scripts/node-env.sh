# Sourced by ./echodb, scripts/install.sh and scripts/test.sh: puts the Node.js that EchoDB runs on first in PATH.
# That is Node.js NODE_MAJOR, the image's (Dockerfile): the machine's own node when it is that major version,
# else the npm registry's `node` package, which scripts/install.sh puts under .tools/.
NODE_MAJOR=24
node_tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/node$NODE_MAJOR"
if [ -x "$node_tools/node_modules/.bin/node" ]; then export PATH="$node_tools/node_modules/.bin:$PATH"; fi
