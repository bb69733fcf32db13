"""Stand-in for mmcv's compiled ops on a machine where they were not built:
every op exists (so mmcv.ops imports) and raises when called."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise RuntimeError(f'mmcv op {name} is not built on this machine')

    return missing
