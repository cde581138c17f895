"""Build hook for the one C extension: the rule models' rows (stream/models/_rules.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
install still succeeds and the rule models use their pure-Python rows (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("stream.models._rules", ["stream/models/_rules.c"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
