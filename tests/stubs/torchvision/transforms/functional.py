"""Stand-in for torchvision.transforms.functional: every function raises when called."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise RuntimeError(f"torchvision.transforms.functional.{name} is not available (tests/stubs stand-in)")

    return unavailable
