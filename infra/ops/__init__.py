"""Operational tools run against a real AWS account (pre-deploy checks)."""
