"""The cyclic garbage collector over the life of one ``mirror`` process.

Python collects by allocation counts. Loading a command's path allocates a few hundred thousand
objects that live as long as the process (modules, classes, dataclass methods, pydantic
validators): the collections they trigger while loading find nothing to free, and each later
full collection walks them all again, as do the interpreter's final collections at exit (about
40 ms for a ``sync --once`` of a small fleet). So, in a process started as the ``mirror``
command (:func:`starting`, before the imports):

- no collection while the command's modules load;
- then (:func:`started`) those objects are frozen (:func:`gc.freeze`: kept out of every
  generation), and the collector runs as usual for what the run itself makes: a resident
  service's cycles are collected as before;
- at exit (:func:`ending`) whatever is left is frozen as well: the process is ending, and the
  final collections would only walk it. Files are closed and logs flushed before that (reports
  are written and closed by the commands; logging shuts down at exit; stdout and stderr are
  flushed by the interpreter), so nothing waits on a collection.

Only the process entry calls :func:`starting`; a program that calls
:func:`mirror.cli.main.main` itself (the tests do) keeps its collector as it is.
"""

from __future__ import annotations

import gc

_loading = False


def starting() -> None:
    global _loading
    if gc.isenabled():
        gc.disable()
        _loading = True


def started() -> None:
    global _loading
    if _loading:
        _loading = False
        gc.enable()
        gc.freeze()


def ending() -> None:
    if gc.isenabled():
        gc.freeze()
