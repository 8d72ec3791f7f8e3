"""Capacity backends of the autoscaler: one small interface (base.Backend), one file per backend."""
