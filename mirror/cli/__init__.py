"""The command line: one thin module per command, and the terminal output they share.

Each command module parses its arguments, builds the objects it needs from the rooms below,
calls them and prints: ``copy``, ``sync``, ``verify``, ``ls``, ``auth``, ``bench``,
``demo``; ``main`` holds
the parser and the exit codes, ``options`` the arguments several commands share, ``terminal``
the progress line, ``runtime`` the event loop.

May import every other room (``service``, ``jobs``, ``copy``, ``registry``, ``transport``, ``auth``,
``types``); nothing imports this room but ``mirror.__main__`` and the ``mirror`` console script.
"""
