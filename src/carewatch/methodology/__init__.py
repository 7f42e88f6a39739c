"""Methodology: rankings, similar areas, DTOC target tracking and CQC review flags.

Pure functions over frames read from the warehouse; every rule and parameter comes from
``config/`` (methodology, peer groups, target sets, review-flag rules).
"""
