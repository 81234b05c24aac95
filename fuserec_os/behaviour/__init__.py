"""Behaviour logs: event and impression schemas, the monthly time-series store, ingest, record, read, erase."""
