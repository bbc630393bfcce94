import os

# Quiet TensorFlow's C++ logging in test output (stderr only; results unaffected).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
