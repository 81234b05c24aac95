"""Profiles: per-user and per-query state computed from behaviour, its store in the cluster, build/update jobs."""
