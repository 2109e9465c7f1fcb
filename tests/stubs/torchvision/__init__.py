"""Tests-only stand-in for torchvision (see tests/stubs/README.md). Not the real package."""
__version__ = "0.0.0+slsdk-test-stand-in"
SLSDK_TEST_STAND_IN = True
