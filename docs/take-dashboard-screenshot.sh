#!/bin/sh
# Takes docs/ray-dashboard-actors.png: the local Ray dashboard's Actors view during the
# elastic story (make run), with headless Chromium (Debian package: chromium).
# The local dashboard asks for Ray's auth token; the screenshot run turns that off.
set -eu
cd "$(dirname "$0")/.."
RAY_AUTH_MODE=disabled .venv/bin/python -m bench.story --dashboard --stretch 6 > /tmp/evmpp-story.log 2>&1 &
story=$!
trap 'kill $story 2>/dev/null || true' EXIT
sleep 35  # genesis, the subscription, the ramp: the pool has scaled up by now
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1000 \
    --virtual-time-budget=15000 --screenshot=docs/ray-dashboard-actors.png \
    "http://127.0.0.1:8265/#/actors"
