"""Transfers: offering administrations and claiming them with a transfer code.

Built in the offer and claim issues; the foundation only reserves the package.
"""
