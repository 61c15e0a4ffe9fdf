"""The render code of the shipped effects. Imported by workers only: it loads PyAV,
NumPy and Pillow."""
