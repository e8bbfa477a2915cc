"""The player page for the local stack: hls.js (from npm) in a small static page."""
