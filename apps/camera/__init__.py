"""The live camera app (`cmlite camera`): sources, capture, the run loop, overlay, window, recording, web page."""
