"""Schedules: cron expressions (``cron.py``) and the running hours they leave (``hours.py``)."""
