"""Test harnesses shared by several test modules: fakes, scripted clients, builders and data
helpers. A test imports them from here, never from another test module; fixtures stay in
``tests/conftest.py``.

- ``databases``: the sample databases on SQLite, PostgreSQL and MariaDB (what conftest's
  fixtures are made of), and URL helpers;
- ``clients``: scripted inference clients (instant, sampled);
- ``assistant``: the core over a scripted client, and the users the tests speak as;
- ``cli``: ``python -m schemas`` in a subprocess;
- ``fake_slack``, ``slack``, ``slack_burst``: a fake Slack Web API, the bot server with its
  Slack app around it, and a burst of commands from a process of its own;
- ``teams``: Teams activities, a recording adapter, a fake Bot Connector, card checks;
- ``corpus``, ``defog``, ``models``: the guard's fixture corpora, defog-data's dumps, the
  offline and tiny models.
"""
