"""Media in and out, for the render code: what a file holds (probe), and the PyAV
pipeline every video effect shares (sources read ahead in a thread, H.264 video and
AAC audio out, the frame loop)."""
