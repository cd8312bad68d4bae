"""What to copy: the config, jobs and the pass that turns them into copy tasks.

- ``config``: the YAML config (loading, models, field parsers, error messages);
- ``mapping``: job sources and destinations, and how a source repository maps to a destination;
- ``filters``: tag filters (include/exclude patterns, semver ranges, latest N);
- ``schedule``: a job's schedule (interval or cron) and when its next run starts (pure);
- ``stores``: opening a repository of any store (registry, ``oci:``, ``s3://``) from a reference;
- ``syncrun``: one pass: jobs into copy tasks, run through one engine, with outcomes per job;
  ``resultlog``: its results, packed; ``tally``: what they add up to per job, counted as kept;
- ``selection``: which tags a job copies from a listing, and which destination tags it covers;
- ``drift`` (pure) and ``survey`` (reads both sides): where each destination stands against its
  source, for ``mirror verify``, the drift metric and prune;
- ``prune`` (pure: what a pass deletes, and the guard rails) and ``pruning`` (confirm, delete);
- ``triggers`` (event bodies into notices) and ``routing`` (notices into jobs), pure;
  ``eventrun``: copy tasks for the images events asked for;
- ``imagelocks``: one copy of an image at a time, across passes and event copies;
- ``progress``: what is moving now, counted from events;
- ``report``: the JSON report of a run and its human summary.

Used by both the service and the command line. May import ``copy``, ``registry``, ``transport``,
``auth`` and ``types``; never ``service`` or ``cli``.
"""
